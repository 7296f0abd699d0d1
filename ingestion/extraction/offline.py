"""The offline extractor: deterministic Spanish and English patterns, no network, no key.

It is the default when no ANTHROPIC_API_KEY is set, so the product runs end to end without
one, and the fake Claude server answers with it. Only the visitor's (role "user") messages
are read; the assistant's lines ("Hola Juan") are never evidence. Within a transcript the
latest statement of a fact wins, as the prospect merge does across extractions.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .base import ExtractionResult
from .guard import EMAIL_RE, guard, looks_like_injection, phones_in

OFFLINE_VERSION = "offline-2026-12-02.1"

_ACCENTS = {"a": "[aá]", "e": "[eé]", "i": "[ií]", "o": "[oó]", "u": "[uúü]", "n": "[nñ]"}


def _phrase(text: str) -> str:
    """An accent-insensitive pattern for a plain lower-case phrase ("inversion" matches "inversión")."""
    return "".join(_ACCENTS.get(c, re.escape(c)) for c in text)


def _any_of(*phrases: str) -> re.Pattern[str]:
    """Whole-word, case- and accent-insensitive match of any phrase; longest first."""
    alternatives = "|".join(_phrase(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![^\W\d_])(?:{alternatives})(?![^\W\d_])", re.IGNORECASE)


# --- Interest rubric (SPEC §5): base 3; name +2, phone +3, email +1.5; intent +2 once;
# "no me interesa" -3; rounded half up and clamped by guard/clamp_nivel.
INTEREST_BASE = 3.0
INTEREST_NAME, INTEREST_PHONE, INTEREST_EMAIL = 2.0, 3.0, 1.5
INTEREST_INTENT, INTEREST_NOT_INTERESTED = 2.0, -3.0
_INTENT = _any_of(
    "quiero", "empezar", "inversion", "inversiones",
    "want", "wants", "wanted", "start", "starting", "started",
    "invest", "investing", "investment", "investments",
)  # fmt: skip
_NOT_INTERESTED = _any_of("no me interesa", "no estoy interesado", "no estoy interesada", "not interested")

# --- Archetypes (SPEC §5 keyword lists, plus English). First match in this priority wins:
# the specific before the generic. "mi empresa" must beat the bare "trabajo"/"empresa" of the
# employed professional, and "trabajo" is so common ("trabajo como freelance", "estudio y
# trabajo") that profesional_vision only applies when nothing more specific was said.
ARCHETYPE_PRIORITY: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("emprendedor_dueno_negocio", _any_of(
        "mi negocio", "mi empresa", "emprendimiento", "mi emprendimiento", "mi propio negocio",
        "tengo un negocio", "emprendedor", "emprendedora",
        "my business", "my company", "my own business", "business owner", "entrepreneur", "i own a",
    )),
    ("independiente_freelancer", _any_of(
        "freelance", "freelancer", "independiente", "por cuenta propia",
        "self-employed", "self employed", "contractor",
    )),
    ("joven_ambicion", _any_of(
        "estudiante", "universidad", "joven", "student", "university", "college", "young",
    )),
    ("lider_comunidad", _any_of(
        "comunidad", "iglesia", "equipo", "lider", "lideres",
        "community", "church", "team", "leader",
    )),
    ("lider_hogar", _any_of(
        "familia", "hijos", "hogar", "ama de casa",
        "family", "kids", "children", "stay-at-home", "stay at home", "homemaker", "housewife",
    )),
    ("profesional_vision", _any_of(
        "trabajo", "empleo", "empresa donde trabajo", "mi jefe",
        "my job", "my boss", "employee", "employed", "i work",
    )),
)  # fmt: skip

# --- Objections, in schema order.
OBJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("precio", _any_of(
        "caro", "cara", "precio", "cuesta", "costo", "dinero", "no tengo plata",
        "expensive", "price", "cost", "costs", "money", "afford",
    )),
    ("tiempo", _any_of(
        "no tengo tiempo", "sin tiempo", "poco tiempo", "ocupado", "ocupada",
        "busy", "no time", "don't have time", "dont have time", "do not have time",
    )),
    ("confianza", _any_of(
        "estafa", "confiar", "confio", "desconfio", "confianza", "fraude", "engano",
        "scam", "trust", "fraud", "legit",
    )),
    ("mlm", _any_of(
        "multinivel", "piramide", "piramidal", "mlm",
        "network marketing", "pyramid", "multi-level", "multilevel",
    )),
)  # fmt: skip

# --- Occupations: "soy X" / "I'm a X" only count when X is a known occupation, which is also
# what tells "soy estudiante" (occupation) from "soy Juan" (name).
OCCUPATIONS = (
    "estudiante", "ingeniero", "ingeniera", "medico", "medica", "doctor", "doctora", "enfermero", "enfermera",
    "profesor", "profesora", "maestro", "maestra", "abogado", "abogada", "contador", "contadora",
    "arquitecto", "arquitecta", "disenador", "disenadora", "programador", "programadora",
    "desarrollador", "desarrolladora", "vendedor", "vendedora", "comerciante", "empresario", "empresaria",
    "emprendedor", "emprendedora", "ama de casa", "pastor", "pastora", "freelancer", "freelance",
    "psicologo", "psicologa", "administrador", "administradora", "secretaria", "cocinero", "cocinera",
    "mecanico", "electricista", "jubilado", "jubilada", "consultor", "consultora", "asesor", "asesora",
    "periodista", "taxista", "conductor", "conductora", "fotografo", "fotografa", "nutricionista",
    "veterinario", "veterinaria", "odontologo", "odontologa", "gerente", "mesero", "mesera",
    "student", "engineer", "software engineer", "nurse", "teacher", "lawyer", "accountant", "architect",
    "designer", "graphic designer", "programmer", "developer", "web developer", "software developer",
    "salesperson", "entrepreneur", "business owner", "small business owner", "stay-at-home mom",
    "stay-at-home dad", "stay at home mom", "stay at home dad", "homemaker", "housewife", "pastor",
    "consultant", "manager", "project manager", "chef", "cook", "mechanic", "electrician", "retiree",
    "writer", "photographer", "dentist", "pharmacist", "cashier", "driver", "personal trainer", "waiter",
    "waitress", "real estate agent", "police officer",
)  # fmt: skip
_OCCUPATION_AFTER = re.compile(
    rf"(?:\bsoy|\bi['\u2019]?m|\bi am)\s+(?:(?:un|una|a|an)\s+)?({_any_of(*OCCUPATIONS).pattern})",
    re.IGNORECASE,
)
_WORKS_AS = re.compile(r"\b(?:trabajo (?:como|de)|i work as|i['\u2019]?m working as)\s+", re.IGNORECASE)
_WORKS_AS_STOP = {
    "en", "para", "y", "e", "desde", "hace", "con", "pero", "porque", "que", "un", "una", "el", "la",
    "in", "at", "for", "and", "but", "from", "with", "since", "because", "so", "the", "of",
}  # fmt: skip
_ARTICLES = {"un", "una", "a", "an"}

# --- Names. Explicit phrases take the words that follow, capitalised or not; "soy X" and
# "I'm X" need a capitalised X that is not an occupation ("soy estudiante" is no name).
_EXPLICIT_NAME = re.compile(r"\b(?:me llamo|mi nombre es|my name is)\b", re.IGNORECASE)
_IMPLICIT_NAME = re.compile(r"(?:\bsoy|\bi['\u2019]?m|\bi am|\bthis is|\bcall me)\b", re.IGNORECASE)
_WORD = re.compile(r"[ \t]+([^\W\d_]+(?:['\u2019-][^\W\d_]+)*)")
_NAME_PARTICLES = {"de", "del", "la", "las", "los", "van", "von", "da", "di"}
_NAME_STOP = {
    "y", "e", "pero", "soy", "tengo", "trabajo", "quiero", "estoy", "vivo", "me", "mi", "desde", "de", "que",
    "and", "but", "i", "im", "am", "my", "from", "the", "a", "an", "here", "so", "just", "not", "very",
    "interested", "looking", "ok", "okay", "fine", "good", "sorry", "hola", "hello", "hi", "gracias",
    "thanks", "muy", "un", "una", "el", "la", "bien", "nuevo", "nueva", "yo", "con", "en", "of", "in",
    "at", "on", "to", "por", "para",
}  # fmt: skip
_MAX_NAME_WORDS = 3
# The real site's hand-off: the assistant asks for the full name and the visitor answers with
# the name alone on a line ("María Fernanda Gómez"); on WhatsApp it asks for the cédula.
_ASKS_NAME = re.compile(r"\bnombre\b|\byour (?:full )?name\b", re.IGNORECASE)
_ASKS_ID = re.compile(r"c[ée]dula|documento|identificaci[óo]n|\bdni\b|\bid number\b", re.IGNORECASE)
_ASKS_CONTACT = re.compile(r"tel[ée]fono|whats\s?app|celular|m[óo]vil|\bphone\b", re.IGNORECASE)
_NOT_A_NAME = (_NAME_STOP - _NAME_PARTICLES) | {
    "no", "si", "sí", "claro", "prefiero", "después", "despues", "luego", "todavía", "todavia", "aún",
    "esp", "paquete", "yes", "later", "rather", "please", "por", "favor",
}  # fmt: skip
_BARE_NAME = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*(?:\s+[^\W\d_]+(?:['\u2019-][^\W\d_]+)*){1,3}")
# An ID number (cédula, C.C., documento, DNI, NIT, passport) is not a phone: the number after
# such a word is masked before phones are looked for.
_ID_NUMBER = re.compile(
    r"(?:\bc[ée]dula|\bc\.\s?c\.|\bcc\b|\bdocumento|\bidentificaci[óo]n|\bdni\b|\bnit\b|\bpasaporte|"
    r"\bpassport|\bid number)[^\d\n]{0,30}\d[\d.\s-]*\d",
    re.IGNORECASE,
)
_OCCUPATION_WORD = _any_of(*OCCUPATIONS)


class OfflineExtractor:
    """Deterministic pattern extractor; never raises ExtractionError."""

    name = "offline"

    def extract(self, messages: list[dict[str, str]]) -> ExtractionResult:
        started = time.monotonic()
        data = guard(extract_raw(messages), messages)
        return ExtractionResult(
            data=data,
            extractor="offline",
            model="offline",
            prompt_version=OFFLINE_VERSION,
            latency_ms=round((time.monotonic() - started) * 1000),
            stop_reason="end_turn",
        )


def extract_raw(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The unguarded answer, in the model's shape (``schema.MODEL_FIELDS``)."""
    turns = _visitor_turns(messages)
    texts = [text for _, text in turns]
    nombre = _last(_names(text) or _name_alone(asked, text) for asked, text in turns)
    emails = [m.group(0) for text in texts for m in EMAIL_RE.finditer(text)]
    phones = phones_in(_without_id_numbers(asked, text) for asked, text in turns)
    joined = "\n".join(texts)
    nivel = INTEREST_BASE
    nivel += INTEREST_NAME if nombre else 0
    nivel += INTEREST_PHONE if phones else 0
    nivel += INTEREST_EMAIL if emails else 0
    nivel += INTEREST_INTENT if _INTENT.search(joined) else 0
    nivel += INTEREST_NOT_INTERESTED if _NOT_INTERESTED.search(joined) else 0
    return {
        "nombre": nombre,
        "email": emails[-1] if emails else None,
        "telefono": phones[-1] if phones else None,
        "ocupacion": _last(_occupations(text) for text in texts),
        "arquetipo": next((name for name, pattern in ARCHETYPE_PRIORITY if pattern.search(joined)), None),
        "nivel_interes": nivel,  # a float here; the guard rounds half up and clamps
        "objeciones": [name for name, pattern in OBJECTION_PATTERNS if pattern.search(joined)],
    }


def _visitor_turns(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(the assistant's turn before it, the visitor's message) for each visitor message, minus
    those that try to instruct the extractor (as ``guard.visitor_texts``)."""
    turns, asked = [], ""
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            continue
        if message.get("role") == "assistant":
            asked = content
        elif message.get("role") == "user" and not looks_like_injection(content):
            turns.append((asked, content))
    return turns


def _name_alone(asked: str, text: str) -> list[str]:
    """A name given alone (2-4 words, nothing else) in answer to the assistant asking for it."""
    line = text.strip().rstrip(".!")
    if not _ASKS_NAME.search(asked) or not _BARE_NAME.fullmatch(line):
        return []
    words = line.split()
    if any(w.lower() in _NOT_A_NAME or _OCCUPATION_WORD.fullmatch(w) for w in words):
        return []
    return [" ".join(w.lower() if w.lower() in _NAME_PARTICLES else w[0].upper() + w[1:] for w in words)]


def _without_id_numbers(asked: str, text: str) -> str:
    """The text with ID numbers masked; all its digits when it answers a question for the ID."""
    if _ASKS_ID.search(asked) and not _ASKS_CONTACT.search(asked):
        return re.sub(r"\d", " ", text)
    return _ID_NUMBER.sub(" ", text)


def _last(found_per_text: Any) -> str | None:
    found = [item for items in found_per_text for item in items]
    return found[-1] if found else None


def _names(text: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for match in _EXPLICIT_NAME.finditer(text):
        name = _name_after(text, match.end(), require_capital=False)
        if name:
            found.append((match.start(), name))
    for match in _IMPLICIT_NAME.finditer(text):
        name = _name_after(text, match.end(), require_capital=True)
        if name:
            found.append((match.start(), name))
    return [name for _, name in sorted(found)]


def _name_after(text: str, position: int, *, require_capital: bool) -> str | None:
    words: list[str] = []
    while len(words) < _MAX_NAME_WORDS:
        match = _WORD.match(text, position)
        if not match:
            break
        word = match.group(1)
        lowered = word.lower()
        if words and lowered in _NAME_PARTICLES:
            following = _WORD.match(text, match.end())
            if following and following.group(1)[0].isupper():
                words.append(lowered)
                position = match.end()
                continue
            break
        if lowered in _NAME_STOP or (require_capital and not word[0].isupper()):
            break
        if not words and _OCCUPATION_WORD.fullmatch(word):
            return None  # "soy Estudiante", "me llamo ... " never starts with an occupation
        words.append(word[0].upper() + word[1:])
        position = match.end()
    return " ".join(words) or None


def _occupations(text: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for match in _OCCUPATION_AFTER.finditer(text):
        found.append((match.start(), match.group(1).lower()))
    for match in _WORKS_AS.finditer(text):
        words: list[str] = []
        position = match.end() - 1  # _WORD expects the separating space
        while len(words) < 4:
            word_match = _WORD.match(text, position)
            if not word_match:
                break
            word = word_match.group(1).lower()
            if not words and word in _ARTICLES:
                position = word_match.end()
                continue
            if word in _WORKS_AS_STOP:
                break
            words.append(word)
            position = word_match.end()
        while words and words[-1] in _NAME_PARTICLES:
            words.pop()
        if words:
            found.append((match.start(), " ".join(words)))
    return [occupation for _, occupation in sorted(found)]
