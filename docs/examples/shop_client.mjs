// An example shop backend on `sgr api` with only HTTP (Node.js 18+, built-in fetch; no packages):
// send an abandonment and a refused event, poll the outcome until it is final, read the
// customer's live offers, verify and redeem the code (a replay, a second redemption: 409).
//   SHOP_API=http://127.0.0.1:8080 SHOP_API_KEY=sgrk_... node docs/examples/shop_client.mjs [USER_ID]
// SHOP_API_KEY: an admin key, or SHOP_PRODUCER_KEY and SHOP_CHECKOUT_KEY (one per scope).
// Workers must run with SGR_OFFER_DELAY_MINUTES=0 to see an offer at once (else: `scheduled`).
// Prints one JSON line per step; exits 1 on any answer the docs do not promise.
const API = (process.env.SHOP_API ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const PRODUCER = process.env.SHOP_PRODUCER_KEY ?? process.env.SHOP_API_KEY;
const CHECKOUT = process.env.SHOP_CHECKOUT_KEY ?? process.env.SHOP_API_KEY;
const USER = process.argv[2] ?? "user_102";
const WAIT_S = Number(process.env.SHOP_WAIT_S ?? 60);
const FINAL = new Set(["offer", "no_offer", "dead_letter"]); // `scheduled` waits for its due_at

async function call(method, path, key, body, headers = {}) {
  const res = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get("content-type") ?? "";
  const json = type.includes("json") ? await res.json() : await res.text();
  return { status: res.status, json, replayed: res.headers.get("idempotent-replayed") === "true" };
}

function expect(step, got, status, check = () => true) {
  const ok = got.status === status && check(got.json);
  console.log(JSON.stringify({ step, ok, status: got.status, body: got.json }));
  if (!ok) {
    console.error(`${step}: expected ${status}, got ${got.status}`);
    process.exit(1);
  }
  return got.json;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const run = Date.now().toString(36);
const now = new Date().toISOString();
const cart = { currency: "EUR", value: 180.0, margin: 0.4 };
const good = {
  event_id: `js-${run}-1`, type: "cart_abandoned", occurred_at: now,
  user_id: USER, session_id: `js-${run}`, cart,
};
const bad = { ...good, event_id: `js-${run}-2`, cart: { ...cart, value: -5 } };

if (!PRODUCER || !CHECKOUT) {
  console.error("set SHOP_API_KEY (admin) or SHOP_PRODUCER_KEY and SHOP_CHECKOUT_KEY");
  process.exit(2);
}
expect("send", await call("POST", "/v1/events", PRODUCER, good), 202,
  (b) => b.accepted[0] === good.event_id);
expect("refused", await call("POST", "/v1/events", PRODUCER, bad), 422,
  (b) => b.kind === "invalid_event" && b.errors[0].field === "cart.value");
// A refused event is never enqueued: it has no outcome, ever (404, not a 404 to wait out).
expect("refused has no outcome", await call("GET", `/v1/events/${bad.event_id}`, PRODUCER), 404);

let outcome;
for (const deadline = Date.now() + WAIT_S * 1000; ; await sleep(250)) {
  const got = await call("GET", `/v1/events/${good.event_id}`, PRODUCER);
  if (got.status === 200 && FINAL.has(got.json.outcome)) {
    outcome = expect("outcome", got, 200);
    break;
  }
  if (got.status !== 404 && got.status !== 200) expect("outcome", got, 200);
  if (Date.now() > deadline) {
    console.error(`no final outcome in ${WAIT_S} s: ${JSON.stringify(got.json)}`);
    process.exit(1);
  }
}
if (outcome.outcome !== "offer") {
  console.log(JSON.stringify({ step: "done", note: `no offer to redeem: ${outcome.reason}` }));
  process.exit(0);
}

const live = expect("live offers", await call("GET", `/v1/customers/${USER}/offers`, CHECKOUT),
  200, (b) => b.offers.some((o) => o.offer_id === outcome.offer_id));
const { code } = live.offers.find((o) => o.offer_id === outcome.offer_id);
expect("verify", await call("POST", `/v1/codes/${code}/verify`, CHECKOUT, { user_id: USER }),
  200, (b) => b.status === "valid");

const order = { order_id: `order-${run}`, cart_value: cart.value, currency: cart.currency };
const redeem = (key) => call("POST", `/v1/codes/${code}/redeem`, CHECKOUT,
  { user_id: USER, order }, { "Idempotency-Key": key });
const first = await redeem(`redeem-${run}`);
expect("redeem", first, 200, (b) => b.status === "redeemed" && !first.replayed);
const replay = await redeem(`redeem-${run}`); // a retry after a timeout: the same answer
expect("replay", replay, 200, (b) => b.status === "redeemed" && replay.replayed);
expect("redeem again", await redeem(`redeem-${run}-2`), 409, (b) => b.kind === "redeemed");

// Outcomes and offers as a stream: the Redis Streams sgr:outcomes and sgr:offers, which need a
// Redis client (producers/consumer.py); over HTTP, poll GET /v1/events/{id} as above.
console.log(JSON.stringify({ step: "done", ok: true }));
