"""The business rules: who may get an offer, the largest discount allowed, the check of an answer.

Pure functions of their arguments: no I/O, no clock, no settings lookup. ``pipeline.py`` gathers
the facts, these functions decide, and the same ``check_answer`` runs on every engine's answer.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker.domain.conversation import LiveOffer
from worker.domain.events import CartEvent, EventType
from worker.domain.model import EventContext, History
from worker.domain.session import session_after


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at for one event, gathered by the pipeline."""

    event_type: EventType
    cart_value: float
    margin: float
    inventory: str
    session_status: str
    stale: bool
    foreign_session: bool  # the session belongs to another user (a session has one user)
    history: History | None
    last_offer_at: datetime | None
    now: datetime
    record: AbandonerRecord | None = None  # the customer's recent record (read with history)


@dataclass(frozen=True)
class AbandonerRecord:
    """A customer's record over the repeat-abandoner window (``SGR_REPEAT_WINDOW_DAYS``)."""

    offers: int  # offers received (abandonment offers and counter-offers)
    abandonments: int  # carts abandoned, besides the one being decided
    redeemed: int  # codes redeemed


@dataclass(frozen=True)
class RuleConfig:
    """The rules' parameters. No defaults here: ``Settings.rule_config()`` derives them from the
    settings, where each default is defined once (and documented in the README)."""

    min_cart_value: float
    offer_window_hours: float
    margin_floor: float
    churn_high: float
    churn_low: float
    high_churn_margin_share: float
    mid_churn_margin_share: float
    low_churn_cap_pct: float
    loyal_ltv: float
    loyal_cap_pct: float
    new_customer_cap_pct: float
    low_stock_factor: float
    max_discount_pct: float
    min_discount_pct: float
    policy_share_of_cap: float  # the rules engine's own offer: this share of the cap
    repeat_window_days: float  # the repeat-abandoner rules look back this far (0: off)
    repeat_lower_after: int  # this many offers in the window: cap x repeat_cap_factor (0: off)
    repeat_cap_factor: float
    repeat_refuse_after: int  # this many offers in the window: no offer (0: off)
    repeat_redeem_abandons: int  # redeemed after this many abandonments: no offer (0: off)


def facts_for(event: CartEvent, context: EventContext, now: datetime) -> Facts:
    """The facts of one event, from the event and what the hot store held before it (the one
    place they are assembled: the pipeline and the bench's direct client both use it)."""
    before = context.session
    status, stale = session_after(event, before)
    cart = event.cart
    return Facts(
        event_type=event.type,
        cart_value=cart.total if cart else ((before and before.cart_value) or 0.0),
        margin=cart.margin_fraction if cart else ((before and before.margin) or 0.0),
        inventory=event.inventory if cart else ((before and before.inventory) or "in_stock"),
        session_status=status,
        stale=stale,
        foreign_session=before is not None and before.user_id != event.user_id,
        history=None,
        last_offer_at=context.last_offer_at,
        now=now,
    )


@dataclass(frozen=True)
class Decision:
    """Whether an offer is allowed, and if so the cap in percent and why."""

    allowed: bool
    reason: str
    segment: str = ""
    cap_pct: float = 0.0
    steps: tuple[str, ...] = field(default_factory=tuple)


def floor_to(value: float, step: float = 0.1) -> float:
    """Round down to a multiple of step (money never rounds up)."""
    return round(math.floor(round(value / step, 9)) * step, 6)


def cap_for(facts: Facts, cfg: RuleConfig) -> Decision:
    """The largest discount (percent of the cart value) these facts allow."""
    margin_pct = facts.margin * 100
    headroom = margin_pct - cfg.margin_floor * 100
    steps = [
        f"margin {margin_pct:.1f}%, floor {cfg.margin_floor * 100:.1f}%: headroom {headroom:.1f}%"
    ]
    hist = facts.history
    if hist is None:
        segment, base = "new_customer", cfg.new_customer_cap_pct
        steps.append(f"no history: new customer, at most {base:.1f}%")
    elif hist.churn_probability > cfg.churn_high:
        segment, base = "high_churn", margin_pct * cfg.high_churn_margin_share
        steps.append(f"churn {hist.churn_probability:.2f} > {cfg.churn_high}: up to {base:.1f}%")
    elif hist.churn_probability < cfg.churn_low:
        segment, base = "low_churn", cfg.low_churn_cap_pct
        steps.append(f"churn {hist.churn_probability:.2f} < {cfg.churn_low}: at most {base:.1f}%")
    else:
        segment, base = "mid_churn", margin_pct * cfg.mid_churn_margin_share
        steps.append(f"churn {hist.churn_probability:.2f}: up to {base:.1f}%")
    if hist is not None and hist.lifetime_value >= cfg.loyal_ltv:
        base = min(base, cfg.loyal_cap_pct)
        segment += "+loyal"
        steps.append(f"loyal (LTV {hist.lifetime_value:.0f}): at most {base:.1f}%")
    if facts.inventory == "low_stock":
        base *= cfg.low_stock_factor
        steps.append(f"low stock: x{cfg.low_stock_factor} -> {base:.1f}%")
    refuse, factor, why = repeat_abandoner(facts.record, cfg)
    if refuse:
        steps.append(f"repeat abandoner: {why}")
        return Decision(False, "repeat_abandoner", segment, 0.0, tuple(steps))
    if factor < 1.0:
        base *= factor
        steps.append(f"repeat abandoner ({why}): x{factor} -> {base:.1f}%")
    cap = floor_to(max(0.0, min(base, headroom, cfg.max_discount_pct, margin_pct)))
    steps.append(f"cap {cap:.1f}% (never above headroom or {cfg.max_discount_pct:.0f}%)")
    if cap <= 0 or cap < cfg.min_discount_pct:
        reason = "margin_too_thin" if headroom < cfg.min_discount_pct else "cap_below_minimum"
        return Decision(False, reason, segment, cap, tuple(steps))
    return Decision(True, "eligible", segment, cap, tuple(steps))


def repeat_abandoner(record: AbandonerRecord | None, cfg: RuleConfig) -> tuple[bool, float, str]:
    """The repeat-abandoner rules on a customer's record: (refuse, cap factor at most 1, why).
    Refused: ``repeat_refuse_after`` offers in the window, or a code redeemed in it after
    ``repeat_redeem_abandons`` abandonments (abandoning on purpose); the cap lowered:
    ``repeat_lower_after`` offers. A rule set to 0 is off; none ever raises a cap."""
    if record is None or cfg.repeat_window_days <= 0:
        return False, 1.0, ""
    days = f"{cfg.repeat_window_days:g} days"
    if cfg.repeat_refuse_after and record.offers >= cfg.repeat_refuse_after:
        return True, 0.0, f"{record.offers} offers in {days}"
    if (
        cfg.repeat_redeem_abandons
        and record.redeemed > 0
        and record.abandonments >= cfg.repeat_redeem_abandons
    ):
        return True, 0.0, f"redeemed after {record.abandonments} abandonments in {days}"
    if cfg.repeat_lower_after and record.offers >= cfg.repeat_lower_after:
        return False, min(1.0, max(0.0, cfg.repeat_cap_factor)), f"{record.offers} offers in {days}"
    return False, 1.0, ""


def eligibility(facts: Facts, cfg: RuleConfig) -> str | None:
    """The checks every offer shares, abandonment and counter-offer alike (a new rule on the
    session or the cart goes here, and both paths have it), or None."""
    if facts.session_status == "ordered":
        return "order_completed"
    if facts.inventory == "out_of_stock":
        return "out_of_stock"
    if facts.cart_value <= 0:
        return "no_cart"
    if facts.cart_value < cfg.min_cart_value:
        return "below_min_cart_value"
    return None


def gate(facts: Facts, cfg: RuleConfig) -> str | None:
    """Why this event may not get an offer (checked cheaply, in this order), or None if it may."""
    if facts.foreign_session:
        return "session_of_another_user"
    if facts.event_type is not EventType.CART_ABANDONED:
        return "not_a_trigger"
    if facts.stale:
        return "stale_event"
    shared = eligibility(facts, cfg)
    if shared is not None:
        return shared
    window = timedelta(hours=cfg.offer_window_hours)
    if facts.last_offer_at is not None and facts.now - facts.last_offer_at < window:
        return "offer_window"
    return None


def decide(facts: Facts, cfg: RuleConfig) -> Decision:
    """Eligibility first, then the cap (which needs the customer's history in ``facts``)."""
    reason = gate(facts, cfg)
    return Decision(False, reason) if reason else cap_for(facts, cfg)


# The model's text may state no number, percent, price or code at all: the system writes the one
# sentence that does (``offer_line``, used by ``pipeline.final_message``). Checked on the NFKC form, case-folded, so
# full-width digits and ligatures read as their plain forms.
_NUMBER_WORDS = frozenset(
    [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "thousand",
        "million",
        "half",
        "quarter",
        "third",
        "dozen",
        "double",
        "twice",
        "triple",
        "null",
        "eins",
        "zwei",
        "drei",
        "vier",
        "fünf",
        "sechs",
        "sieben",
        "acht",
        "neun",
        "zehn",
        "zwanzig",
        "dreißig",
        "fünfzig",
        "hundert",
        "halb",
        "hälfte",
        "un",
        "une",
        "deux",
        "trois",
        "quatre",
        "cinq",
        "sept",
        "huit",
        "neuf",
        "dix",
        "vingt",
        "trente",
        "cinquante",
        "cent",
        "moitié",
        "uno",
        "dos",
        "tres",
        "cuatro",
        "cinco",
        "seis",
        "siete",
        "ocho",
        "nueve",
        "diez",
        "veinte",
        "treinta",
        "cincuenta",
        "cien",
        "mitad",
        "due",
        "tre",
        "quattro",
        "sei",
        "sette",
        "otto",
        "nove",
        "dieci",
        "venti",
        "trenta",
        "cinquanta",
        "cento",
        "metà",
    ]
)
_PERCENT_WORDS = re.compile(
    r"percent|per\s*cent|pct|prozent|pourcent|por\s*ciento|porcentaje|per\s*cento|procent",
    re.IGNORECASE,
)
_OFFER_WORDS = frozenset(
    [
        "code",
        "codes",
        "coupon",
        "coupons",
        "voucher",
        "vouchers",
        "promo",
        "promocode",
        "discount",
        "discounts",
        "rabatt",
        "gutschein",
        "free",
        "gratis",
        "off",
    ]
)
_SYMBOLS = set("%％٪‰‱﹪$€£¥₹₩₽¢#＃")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# A message is plain text: no markup, link, e-mail address or phone number (the reply's schema
# pattern, ``negotiation_schemas.REPLY_PATTERN``, allows none by construction; this is the check
# again, on every engine's text, with look-alikes: checked on the text and on its NFKC form).
_ANGLES = set("<>‹›«»〈〉⟨⟩〈〉《》ᐸᐳ˂˃❮❯❬❭⧼⧽﹤﹥＜＞")
_INVISIBLE = set("\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")  # fillers not of category Cf
_ENTITY = re.compile(r"&#?[a-z0-9]+;", re.IGNORECASE)
_MARKDOWN = re.compile(r"\[[^\]]*\]\s*\(|!\[|\]\s*\[|\]\s*:\s*\S|`")
_LINK = re.compile(
    r"://|\bwww\b|\bhttps?\b|\b(?:javascript|vbscript|livescript)\b"
    r"|\b(?:data|mailto|file|tel|sms|ftp|blob|about|intent)\s*:"
    r"|\b[a-z][a-z0-9+.-]*:(?=[^\s])"  # any scheme: letters and a colon with no space after
    r"|\b(?:dot|punkt|point)\s+(?:com|net|org|io|co|de|info|biz|shop|app|xyz|ru|cn)\b",
    re.IGNORECASE,
)
_DOMAIN = re.compile(r"[^\W_][.。｡．][^\W\d_]{2,}", re.UNICODE)  # a dot between letters
_EMAIL = set("@＠﹫")
_PHONE = re.compile(r"\+\s*\d|\d[\d\s().-]{5,}\d")


def markup_problems(text: str) -> list[str]:
    """Why ``text`` is not plain text: markup (``<`` or ``>`` and their look-alikes, HTML
    entities, markdown links and images, backticks), a link (a URL scheme such as ``https:``,
    ``javascript:`` or ``data:``, ``://``, ``www``, a bare domain such as ``evil.example.com``,
    a spelled-out one such as ``evil dot com``), an e-mail address, a phone number, or an
    invisible filler character."""
    problems: list[str] = []
    forms = (text, unicodedata.normalize("NFKC", text))
    checks = {
        "message_has_markup": lambda t: (
            any(ch in _ANGLES for ch in t) or bool(_ENTITY.search(t) or _MARKDOWN.search(t))
        ),
        "message_has_link": lambda t: bool(_LINK.search(t) or _DOMAIN.search(t)),
        "message_has_email": lambda t: any(ch in _EMAIL for ch in t),
        "message_has_phone_number": lambda t: bool(_PHONE.search(t)),
        "message_has_invisible_character": lambda t: any(ch in _INVISIBLE for ch in t),
    }
    for name, found in checks.items():
        if any(found(form) for form in forms):
            problems.append(name)
    return problems


def message_problems(text: str) -> list[str]:
    """Why the model's text may not be sent as it is: any number (digits of any script, number
    words in English, German, French, Spanish or Italian, fractions, Roman numeral signs), percent or
    currency sign, percent word, code-like token, or word about codes and discounts; and
    anything that is not plain text (``markup_problems``: markup, links, bare domains, e-mail
    addresses, phone numbers). Empty: the text states nothing the system did not set."""
    problems: list[str] = []
    plain = unicodedata.normalize("NFKC", text)
    for ch in text + plain:  # before NFKC too: it turns a Roman numeral sign into letters
        category = unicodedata.category(ch)
        if category in ("Nd", "Nl", "No"):
            problems.append(f"message_has_number: {ch!r}")
            break
        if category in ("Cc", "Cf") and ch not in "\n":
            problems.append(f"message_has_control_character: U+{ord(ch):04X}")
            break
    if any(ch in _SYMBOLS for ch in plain):
        problems.append("message_has_percent_or_currency_sign")
    folded = plain.casefold()
    if _PERCENT_WORDS.search(folded):
        problems.append("message_has_percent_word")
    words = _WORD.findall(folded)
    if any(w in _NUMBER_WORDS for w in words):
        problems.append("message_has_number_word")
    if any(w in _OFFER_WORDS for w in words):
        problems.append("message_mentions_code_or_discount")
    for token in re.findall(r"[^\W\d_][\w-]{3,}", plain):
        if token.isupper():
            problems.append(f"message_has_code_like_token: {token[:20]!r}")
            break
    problems.extend(markup_problems(text))
    return problems


# The model's text must also read as a message: English (the shops' language), long enough to say
# something, and not a loop. Small models fail these more often than the safety checks above.
MESSAGE_MIN_CHARS = 20
_ENGLISH_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "back",
        "be",
        "but",
        "by",
        "can",
        "come",
        "for",
        "from",
        "have",
        "here",
        "hope",
        "i",
        "if",
        "in",
        "is",
        "it",
        "just",
        "let",
        "me",
        "more",
        "my",
        "no",
        "not",
        "now",
        "of",
        "on",
        "or",
        "our",
        "ready",
        "so",
        "still",
        "that",
        "the",
        "them",
        "there",
        "this",
        "to",
        "us",
        "was",
        "we",
        "when",
        "while",
        "will",
        "with",
        "you",
        "your",
        "yours",
    ]
)


def message_quality_problems(text: str) -> list[str]:
    """Why the model's text does not read as a message: too short (under ``MESSAGE_MIN_CHARS``),
    not English (letters mostly outside ASCII, or no common English word among four or more
    words), or repetitive (three words said twice in the same order, one word as a third of a longer text, or a
    character run of five). An empty text is the system's own business (it writes the offer
    sentence) and has no problem here."""
    body = text.strip()
    if not body:
        return []
    problems: list[str] = []
    if len(body) < MESSAGE_MIN_CHARS:
        problems.append(f"message_too_short: {len(body)} chars < {MESSAGE_MIN_CHARS}")
    letters = [ch for ch in body if ch.isalpha()]
    ascii_share = sum(ch.isascii() for ch in letters) / len(letters) if letters else 0.0
    words = _WORD.findall(body.casefold())
    if ascii_share < 0.9 or (len(words) >= 4 and not _ENGLISH_WORDS.intersection(words)):
        problems.append(f"message_not_english: {body[:30]!r}")
    triples = list(zip(words, words[1:], words[2:], strict=False))
    top = max((words.count(w) for w in set(words)), default=0)
    if (
        len(triples) != len(set(triples))
        or (len(words) >= 6 and top * 3 > len(words))
        or re.search(r"(.)\1{4}", body)
    ):
        problems.append("message_repetition")
    return problems


def check_answer(
    discount_pct: float,
    stated_cap_pct: float,
    message: str,
    cap_pct: float,
    cfg: RuleConfig,
) -> list[str]:
    """Everything wrong with an engine's answer; an empty list means it may be sent."""
    problems = []
    if not math.isfinite(discount_pct) or discount_pct < 0:
        problems.append(f"discount_invalid: {discount_pct!r}")
    elif discount_pct > cap_pct + 1e-9:
        problems.append(f"discount_above_cap: {discount_pct} > {cap_pct}")
    elif discount_pct < cfg.min_discount_pct:
        problems.append(f"discount_below_minimum: {discount_pct} < {cfg.min_discount_pct}")
    if not math.isfinite(stated_cap_pct) or stated_cap_pct > cap_pct + 1e-9:
        problems.append(f"stated_cap_above_cap: {stated_cap_pct} > {cap_pct}")
    problems.extend(message_problems(message))
    problems.extend(message_quality_problems(message))
    return problems


def share_of_cap(cap_pct: float, cfg: RuleConfig) -> float:
    """``cfg.policy_share_of_cap`` of the cap, rounded down to a whole percent (to 0.1 when a whole
    percent would fall below one percent or the minimum discount), never below the minimum
    discount nor 0.01 (rounded up to 0.01, the step of a published discount), never above the
    cap (an allowed cap is at least the minimum, and a multiple of 0.1)."""
    raw = max(0.0, cap_pct * cfg.policy_share_of_cap)
    whole = float(math.floor(round(raw, 9)))
    choice = whole if whole >= max(1.0, cfg.min_discount_pct) else floor_to(raw, 0.1)
    hundredths = max(1, math.ceil(round(cfg.min_discount_pct * 100, 6)))
    if hundredths / 100 < cfg.min_discount_pct:
        hundredths += 1
    return min(cap_pct, max(choice, hundredths / 100))


def policy_discount(decision: Decision, cfg: RuleConfig) -> float:
    """The rules engine's own choice for an allowed offer: ``share_of_cap`` of the decision's
    cap. It is also the fallback after a failed or refused LLM answer, so a broken model never
    hands out the cap by default."""
    return share_of_cap(decision.cap_pct, cfg)


# --- negotiation: counter-offers (worker/handlers/message.py) ------------------------------------
# One rule set and one record of what the customer was offered for abandonment offers and
# negotiation: the customer's live offer (any session) is the floor; a counter-offer replaces it
# (its code is voided), is never below it, never above the cap, and never repeats it.
def negotiation_gate(
    facts: Facts, cfg: RuleConfig, live: LiveOffer | None, accepted: bool
) -> str | None:
    """Why a price question may not get a new price now (cheap checks, in this order), or None.
    Unlike ``gate``, a customer's message is a trigger, and a live offer in the window is no bar:
    a counter-offer replaces it. An offer redeemed, accepted or expired in the window is."""
    if facts.foreign_session:
        return "session_of_another_user"
    shared = eligibility(facts, cfg)
    if shared is not None:
        return shared
    if live is not None and live.redeemed_at is not None:
        window = timedelta(hours=cfg.offer_window_hours)
        if facts.now - live.created_at < window:
            return "offer_redeemed"
    if accepted and live is not None and live.usable(facts.now):
        return "offer_accepted"
    if live is None or not live.usable(facts.now):
        window = timedelta(hours=cfg.offer_window_hours)
        if facts.last_offer_at is not None and facts.now - facts.last_offer_at < window:
            return "offer_window"
    return None


def negotiation_floor(live: LiveOffer | None, now: datetime) -> float | None:
    """The discount a counter-offer may not go below: the customer's usable live offer's."""
    return live.discount_pct if live is not None and live.usable(now) else None


def counter_offer(cap_pct: float, floor_pct: float | None, cfg: RuleConfig) -> float | None:
    """The rules engine's next price: ``share_of_cap`` to open (``SGR_POLICY_SHARE_OF_CAP``, half
    by default; at least the minimum discount), then a quarter of the cap more each time the
    customer pushes (at least one point), never above the cap; None when the floor already is the
    cap (nothing better may be offered: the live offer stands)."""
    if floor_pct is None:
        return share_of_cap(cap_pct, cfg)
    if floor_pct >= cap_pct - 1e-9:
        return None
    step = max(1.0, cap_pct / 4)
    return floor_to(min(cap_pct, floor_pct + step))


def counter_offer_problems(
    discount_pct: float,
    stated_cap_pct: float,
    cap_pct: float,
    floor_pct: float | None,
    cfg: RuleConfig,
) -> list[str]:
    """Everything wrong with a counter-offer; empty means it may replace the live offer."""
    problems = check_answer(discount_pct, stated_cap_pct, "", cap_pct, cfg)
    if floor_pct is not None and math.isfinite(discount_pct) and discount_pct < floor_pct - 1e-9:
        problems.append(f"discount_below_prior_offer: {discount_pct} < {floor_pct}")
    return problems


def offer_line(code: str, discount_pct: float, expires: datetime) -> str:
    """The one sentence that states an offer: written by the system, never by the model."""
    return f"Use code {code} for {discount_pct:g}% off until {expires:%Y-%m-%d %H:%M} UTC."
