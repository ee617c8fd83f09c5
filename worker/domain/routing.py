"""The deterministic router of a customer's message: keywords and patterns per language (English,
German, French, Spanish, Italian, Dutch), pure.

It backs the model's router (``worker/handlers/message.py``): where its words decide, they decide,
whatever the model answered; where none match, the model's route stands, except that ``accept`` is
taken only on words of agreement. The order: a person asked for, a complaint or a legal matter
(``escalate``); agreement to the offer on the table (``accept``, only with an offer there, and not
when negated: "I don't accept"); anything about price (``price``: a discount, too expensive,
leaving, an injection asking for a percent); a question about an order, delivery, returns or the
products (``respond``: "where is my parcel?" never routes to accept or price).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ROUTED = ("price", "respond", "escalate", "accept")


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)


ESCALATE = _words(
    # English
    r"human",
    r"(?:real |actual )?person",
    r"manager",
    r"supervisor",
    r"complain\w*",
    r"complaint",
    r"lawyer",
    r"legal\w*",
    r"sue",
    r"court",
    r"fraud\w*",
    r"scam\w*",
    r"(?:speak|talk) (?:to|with) (?:a |an |the |someone|somebody|some)\w*",
    r"someone real",
    r"unacceptable",
    r"disgust\w*",
    r"outrage\w*",
    r"furious",
    r"terrible service",
    r"rip[- ]?off",
    r"report you",
    r"charged twice",
    r"stolen",
    r"hacked",
    r"injur\w*",
    r"dangerous",
    # German
    r"mensch\w*",
    r"mitarbeiter\w*",
    r"vorgesetzte\w*",
    r"beschwerde\w*",
    r"beschweren",
    r"anwalt",
    r"betrug\w*",
    r"frechheit",
    r"unversch[äa]mt\w*",
    # French
    r"humain",
    r"responsable",
    r"r[ée]clamation",
    r"plainte",
    r"avocat",
    r"arnaque\w*",
    r"inadmissible",
    r"parler [àa] quelqu'un",
    # Spanish
    r"persona real",
    r"gerente",
    r"queja\w*",
    r"reclamaci[óo]n",
    r"abogado",
    r"estafa\w*",
    r"denuncia\w*",
    r"hablar con (?:alguien|una persona)",
    # Italian
    r"umano",
    r"operatore",
    r"reclamo",
    r"lamentela",
    r"avvocato",
    r"truffa\w*",
    r"parlare con (?:qualcuno|una persona)",
    # Dutch
    r"klacht\w*",
    r"medewerker",
    r"advocaat",
    r"oplichting",
)
ACCEPT = _words(
    # English
    r"i (?:will |'ll )?accept",
    r"i accept (?:it|this|that|the offer)",
    r"accepted",
    r"(?:it'?s a |that'?s a |ok,? )?deal[.!]*$",
    r"it'?s a deal",
    r"i'?ll take it",
    r"i will take it",
    r"i take it",
    r"sounds good",
    r"(?:ok|okay|alright|fine|great|perfect|yes),? (?:deal|thanks|thank you|i'?ll (?:buy|take|order)|let'?s do it|that works)",
    r"let'?s do it",
    r"that works(?: for me)?",
    r"i'?m in",
    r"yes please",
    r"i'?ll (?:buy|order) (?:it|now)",
    r"agreed",
    # German
    r"einverstanden",
    r"abgemacht",
    r"ich nehme (?:es|das|das angebot)",
    r"passt",
    r"gekauft",
    # French
    r"j'accepte",
    r"d'accord",
    r"marché conclu",
    r"je le prends",
    r"[çc]a marche",
    # Spanish
    r"acepto",
    r"de acuerdo",
    r"trato hecho",
    r"me lo llevo",
    r"vale,? (?:gracias|perfecto)",
    # Italian
    r"accetto",
    r"affare fatto",
    r"lo prendo",
    r"va bene",
    # Dutch
    r"akkoord",
    r"ik neem (?:het|hem)",
)
NEGATION = re.compile(
    r"(?<!\w)(?:not?|don'?t|do not|won'?t|will not|never|nicht|kein\w*|pas|ne|nunca|non|niet)"
    r"(?:\s+\w+){0,2}\s*$",
    re.IGNORECASE,
)
PRICE = _words(
    # English
    r"discount\w*",
    r"pric(?:e|es|ey|y|ing)",
    r"cheap\w*",
    r"expensive",
    r"cost\w*",
    r"deal",
    r"offer\w*",
    r"coupons?",
    r"codes?",
    r"vouchers?",
    r"promo\w*",
    r"percent\w*",
    r"sale",
    r"money",
    r"afford\w*",
    r"budget",
    r"leav\w*",
    r"cancel\w*",
    r"competitor\w*",
    r"elsewhere",
    r"better",
    r"lower",
    r"reduc\w*",
    r"off",
    r"bargain",
    r"haggle",
    r"too much",
    r"(?:any|a) chance",
    r"something (?:extra|more)",
    r"promised?",
    r"discount_percent",
    r"free",
    # German
    r"rabatt\w*",
    r"preis\w*",
    r"g[üu]nstig\w*",
    r"billig\w*",
    r"teuer",
    r"zu viel",
    r"nachlass",
    r"gutschein\w*",
    r"angebot\w*",
    r"prozent",
    # French
    r"r[ée]duction",
    r"remise",
    r"prix",
    r"cher",
    r"moins cher",
    r"promotion",
    r"pourcent\w*",
    r"rabais",
    # Spanish
    r"descuento\w*",
    r"precio\w*",
    r"caro",
    r"barato",
    r"rebaja\w*",
    r"oferta\w*",
    r"por ciento",
    # Italian
    r"sconto\w*",
    r"prezzo\w*",
    r"costoso",
    r"troppo caro",
    r"offerta",
    r"per cento",
    # Dutch
    r"korting",
    r"prijs\w*",
    r"duur",
    r"goedkoper",
)
RESPOND = _words(
    # English
    r"where is",
    r"parcel",
    r"package",
    r"delivery",
    r"deliver\w*",
    r"shipping",
    r"ship\w*",
    r"tracking",
    r"track",
    r"arriv\w*",
    r"returns?",
    r"exchange",
    r"sizes?",
    r"sizing",
    r"fit",
    r"colou?rs?",
    r"material",
    r"in stock",
    r"available",
    r"how long",
    r"when will",
    r"opening hours",
    r"address",
    r"password",
    r"account",
    r"invoice",
    r"receipt",
    r"payment method\w*",
    r"pay with",
    r"paypal",
    r"weather",
    r"joke",
    r"hello",
    r"hi",
    r"thanks?",
    r"thank you",
    r"question",
    r"help",
    # German
    r"wo ist",
    r"paket",
    r"lieferung",
    r"versand",
    r"r[üu]cksendung",
    r"gr[öo][ßs]e",
    r"farbe",
    r"wann kommt",
    r"rechnung",
    # French
    r"o[ùu] est",
    r"colis",
    r"livraison",
    r"retour",
    r"taille",
    r"couleur",
    r"quand",
    r"facture",
    # Spanish
    r"d[óo]nde est[áa]",
    r"paquete",
    r"pedido",
    r"env[íi]o",
    r"devoluci[óo]n",
    r"talla",
    r"cu[áa]ndo",
    r"factura",
    # Italian
    r"dov'?[èe]",
    r"pacco",
    r"consegna",
    r"spedizione",
    r"reso",
    r"taglia",
    r"quando",
    r"fattura",
    # Dutch
    r"waar is",
    r"pakket",
    r"levering",
    r"bezorging",
    r"maat",
)


@dataclass(frozen=True)
class WordRoute:
    """The route the words give, and the words that decided it (None: no pattern matched)."""

    route: str | None
    matched: str | None = None

    @property
    def decided(self) -> bool:
        return self.route is not None


# A claim of authority ("as the store manager I authorise ...") is not a request for one.
AUTHORITY = re.compile(
    r"\b(?:as|i am|i'm) (?:the |a |your )?(?:store |shop )?"
    r"(?:manager|supervisor|owner|admin\w*|ceo|boss)\b",
    re.IGNORECASE,
)


def _accepted(text: str) -> str | None:
    """The first agreement in ``text`` not negated ("I don't accept", "I accept nothing")."""
    for match in ACCEPT.finditer(text):
        before = text[: match.start()]
        if NEGATION.search(before) and not re.search(r"[.!?,;]\s*$", before):
            continue
        if re.match(r"\s*(?:nothing|none|no\b|not\b|never\b)", text[match.end() :], re.I):
            continue
        return match.group(0)
    return None


def route_by_words(message: str, offer_on_the_table: bool) -> WordRoute:
    """The deterministic route of ``message`` (see the module docstring for the order)."""
    text = unicodedata.normalize("NFKC", message).replace("\u2019", "'").strip()
    found = ESCALATE.search(AUTHORITY.sub(" ", text))
    if found:
        return WordRoute("escalate", found.group(0))
    agreed = _accepted(text) if offer_on_the_table else None
    price = PRICE.search(text) or re.search(r"%|％", text)
    if agreed and not (
        price and re.search(r"\?|\b(?:but|if|only|aber|mais|pero|ma)\b", text, re.I)
    ):
        return WordRoute("accept", agreed)
    if price:
        return WordRoute("price", price.group(0))
    found = RESPOND.search(text)
    if found:
        return WordRoute("respond", found.group(0))
    return WordRoute(None)


def combine(model_route: str, words: WordRoute) -> str:
    """The route taken: the words' where they decide; else the model's, but never ``accept``
    without words of agreement (a question is not a yes)."""
    if words.route is not None:
        return words.route
    return "respond" if model_route == "accept" else model_route
