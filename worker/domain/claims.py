"""The claims check: what a message promises or states that the shop did not.

The message checks (``rules.message_problems``) keep numbers, codes and links out; this check keeps
out promises and statements no rule of the shop backs: refunds, free shipping, gifts, guarantees,
price matching, denials of the cart ("no longer waiting", "sold out"), an order that does not
exist ("your order is ready for pickup": the customer has not ordered), urgency or scarcity the
inventory does not show, deadlines other than the offer's own expiry, exclusivity, the system's
internals ("headroom", "churn"), and a past relationship with a customer who has none. It runs on
every free-text message (``SGR_MESSAGE_MODE=free``), on every negotiation reply, and on each entry
of the approved-copy catalogue when it is loaded. Pure: words and patterns, English first, with the
common forms of the shops' other languages (German, French, Spanish, Italian).

A refused message is replaced by the rules engine's answer (an offer) or the template (a reply),
and the problem (``message_claims_<kind>: 'words'``) is recorded with the outcome and counted
(``sgr_guardrail_interventions{check="message_claims_<kind>"}``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class ClaimFacts:
    """What the system knows that a message may state: the cart's inventory, whether an offer with
    an expiry comes with the message (``before it expires`` is then true), and whether the
    customer is new (no past orders: "welcome back" is then false)."""

    inventory: str = "in_stock"
    offer_expires: bool = True
    new_customer: bool = False


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


# Promises the shop never makes in a message (whatever the cart).
ALWAYS: dict[str, re.Pattern[str]] = {
    "refund": _any(
        r"refund\w*",
        r"money[- ]back",
        r"reimburs\w*",
        r"cash ?back",
        r"repay\w*",
        r"r[üu]ckerstattung\w*",
        r"geld zur[üu]ck",
        r"rembours\w*",
        r"reembols\w*",
        r"rimbors\w*",
    ),
    "free_shipping": _any(
        r"free (?:shipping|delivery|postage|returns?)",
        r"(?:shipping|delivery|postage) (?:is |are )?(?:on us|included|covered|waived)",
        r"no (?:shipping|delivery|postage) (?:costs?|fees?|charges?)",
        r"ships? (?:for )?free",
        r"versandkostenfrei",
        r"kostenlose[rn]? (?:versand|lieferung)",
        r"livraison (?:gratuite|offerte)",
        r"env[íi]o gratis",
        r"spedizione gratuita",
    ),
    "gift": _any(
        r"gifts?",
        r"presents?",
        r"bonus\w*",
        r"freebies?",
        r"complimentary",
        r"on the house",
        r"goodie\w*",
        r"treats?",
        r"surprises?",
        r"(?:little|small|special) (?:thank[- ]you|something|extra)",
        r"thank[- ]you (?:aside|gift)",
        r"extra (?:items?|products?)",
        r"geschenk\w*",
        r"cadeau\w*",
        r"regalo\w*",
        r"omaggio",
    ),
    "guarantee": _any(
        r"guarant\w*",
        r"warrant(?:y|ies)",
        r"we promise",
        r"promised?",
        r"risk[- ]free",
        r"no risk",
        r"assured",
        r"satisfaction",
        r"garanti\w*",
        r"garant[ií]\w*",
    ),
    "price_match": _any(
        r"price[- ]match\w*",
        r"match (?:the|any|a|their|your) (?:price|offer)s?",
        r"beat (?:the|any|their|a) (?:price|offer)s?",
        r"(?:lowest|best|cheapest|unbeatable) (?:prices?|deals?|offers?)",
        r"cheapest",
        r"price (?:drop|protection|guarantee)",
        r"bestpreis\w*",
        r"meilleur prix",
        r"mejor precio",
        r"miglior prezzo",
    ),
    "denies_cart": _any(
        r"no longer",
        r"sold out",
        r"out of stock",
        r"unavailable",
        r"not (?:available|in stock|waiting|there|saved)",
        r"(?:is|are|was|were|has been|have been) (?:gone|removed|deleted|emptied|cleared|cancel+ed)",
        r"(?:cart|order|items?|picks?|favourites?|favorites?) (?:expired|vanished|disappeared)",
        r"nicht mehr",
        r"ausverkauft",
        r"plus disponible",
        r"[ée]puis[ée]e?s?",
        r"agotad[oa]s?",
        r"esaurit[oi]",
    ),
    "order_status": _any(
        r"(?:your|the) (?:new )?order (?:is|has been|was) (?:now )?(?:ready|available|confirmed|"
        r"placed|shipped|dispatched|on its way|complete\w*|processed|being prepared)",
        r"(?:available|ready) for (?:pickup|pick-up|collection)",
        r"(?:is|are) on (?:its|their) way",
        r"you will receive (?:it|them|your (?:order|items?|parcel|package))",
        r"(?:has|have) (?:been )?(?:shipped|dispatched|delivered)",
        r"we (?:have )?(?:shipped|sent) (?:it|them|your)",
    ),
    "deadline": _any(
        r"today only",
        r"tonight",
        r"midnight",
        r"ends? (?:soon|today|tonight|now)",
        r"last day",
        r"final hours?",
        r"(?:only|just) (?:today|hours)",
        r"countdown",
        r"nur heute",
        r"aujourd'hui seulement",
        r"s[óo]lo hoy",
        r"solo oggi",
    ),
    "exclusive": _any(
        r"exclusive\w*",
        r"vip",
        r"special (?:prices?|deals?|rates?|pricing)",
        r"members? only",
        r"selected customers?",
        r"exklusiv\w*",
        r"exclusi[fv]\w*",
        r"esclusiv\w*",
    ),
    "internals": _any(
        r"headroom",
        r"margins?",
        r"churn\w*",
        r"(?:the|your|our|a) cap",
        r"segments?",
        r"ltv",
        r"lifetime value",
        r"rules? engine",
        r"guardrails?",
        r"prompts?",
        r"as an ai",
        r"language model",
        r"eligib\w*",
        r"algorithm\w*",
    ),
}
# Urgency and scarcity: true only where the inventory says stock is low.
SCARCITY = _any(
    r"running (?:low|out)",
    r"low (?:in )?stock",
    r"limited (?:stock|supply|supplies|quantit(?:y|ies)|time|availability)",
    r"stock is (?:low|limited|running)",
    r"(?:only|just) (?:a )?(?:few|little|handful)(?: \w+)? (?:left|remaining)",
    r"(?:few|little) left",
    r"selling (?:fast|out|quickly)",
    r"almost (?:gone|sold)",
    r"last (?:chance|ones?|few|items?|pieces?)",
    r"while (?:stocks?|supplies) last",
    r"hurry",
    r"act (?:now|fast)",
    r"(?:do not|don't) wait",
    r"before (?:it's|it is|they're|they are|its|theyre) gone",
    r"in (?:high )?demand",
    r"knapp",
    r"fast ausverkauft",
    r"plus que quelques",
    r"quedan pocos",
    r"ultimi pezzi",
)
# "before it expires": true only when an offer with an expiry comes with the message.
EXPIRY = _any(
    r"(?:before|until) (?:it|the offer|your offer|this offer) (?:expires|ends|runs out)",
    r"while it lasts",
    r"expires? soon",
)
# A past relationship: false for a customer with no past orders.
RELATIONSHIP = _any(
    r"again",
    r"welcome back",
    r"as always",
    r"loyal\w*",
    r"missed you",
    r"returning",
    r"come back to us",
    r"long[- ]time",
    r"regular customer",
)


def claim_problems(text: str, facts: ClaimFacts) -> list[str]:
    """What ``text`` claims that ``facts`` (the system's) do not back, one problem per kind:
    ``message_claims_<kind>: 'the words'``. Empty: nothing promised beyond what the shop sends."""
    plain = unicodedata.normalize("NFKC", text).replace("\u2019", "'")
    problems: list[str] = []

    def found(kind: str, pattern: re.Pattern[str]) -> None:
        match = pattern.search(plain)
        if match:
            problems.append(f"message_claims_{kind}: {match.group(0)[:30]!r}")

    for kind, pattern in ALWAYS.items():
        found(kind, pattern)
    if facts.inventory != "low_stock":
        found("scarcity", SCARCITY)
    if not facts.offer_expires:
        found("expiry", EXPIRY)
    if facts.new_customer:
        found("relationship", RELATIONSHIP)
    return problems


# --- the reasoning against the system's facts (counted by ``sgr eval``) ----------------------------
_NOT = r"(?<!not )(?<!no )(?<!never )"
_LOYAL = re.compile(_NOT + r"\bloyal\w*", re.IGNORECASE)
_NEW = re.compile(
    r"\b(?:new customer|no (?:order )?history|no past orders?|no orders?|first[- ]time|"
    r"first order|never ordered|not ordered)\b",
    re.IGNORECASE,
)
_PAST = re.compile(
    _NOT + r"\b(?:returning|regular|repeat customer|many (?:past )?orders|past orders|"
    r"ordered before|orders often|long[- ]time)\b",
    re.IGNORECASE,
)
_HIGH_CHURN = re.compile(
    _NOT + r"\b(?:high churn|likely to (?:leave|churn)|may not come back|at risk)\b", re.IGNORECASE
)
_LOW_CHURN = re.compile(r"\b(?:low churn|unlikely to (?:leave|churn))\b", re.IGNORECASE)
_LOW_STOCK = re.compile(
    _NOT + r"\b(?:low stock|stock is low|running low|scarce|few left)\b", re.IGNORECASE
)


def reasoning_contradictions(
    texts: list[str], segment: str, inventory: str, orders: int
) -> list[str]:
    """What an answer's reasoning texts (summary, analyses) state against the system's facts:
    ``loyal`` for a customer the rules do not call loyal, ``new`` for one with past orders, past
    orders for a new one, high or low churn where the rules' segment says otherwise, low stock
    where the inventory does not. One name per kind found."""
    text = " | ".join(texts)
    base, _, flag = segment.partition("+")
    new = orders <= 0
    found: list[str] = []
    checks = (
        ("loyal_not_loyal", flag != "loyal" and bool(_LOYAL.search(text))),
        ("new_but_returning", not new and bool(_NEW.search(text))),
        ("history_but_new", new and bool(_PAST.search(text) or _LOYAL.search(text))),
        ("high_churn_not_high", base != "high_churn" and bool(_HIGH_CHURN.search(text))),
        ("low_churn_not_low", base != "low_churn" and bool(_LOW_CHURN.search(text))),
        ("low_stock_not_low", inventory != "low_stock" and bool(_LOW_STOCK.search(text))),
    )
    for name, hit in checks:
        if hit:
            found.append(name)
    return found
