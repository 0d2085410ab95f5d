"""Container names: Docker-style generated names (``adjective_surname``) and name validation."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from dockyard.errors import Internal, InvalidArgument

_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_LEFT = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful",
    "blissful", "bold", "boring", "brave", "busy", "charming", "clever", "compassionate", "competent",
    "condescending", "confident", "cool", "cranky", "crazy", "dazzling", "determined", "distracted",
    "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant", "eloquent", "epic", "exciting",
    "fervent", "festive", "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted",
    "goofy", "gracious", "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible",
    "inspiring", "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing", "loving",
    "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice", "nifty",
    "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless",
    "quirky", "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
    "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty",
    "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful",
    "xenodochial", "youthful", "zealous", "zen",
)
_RIGHT = (
    "agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata", "austin",
    "babbage", "banach", "bardeen", "bartik", "bassi", "bell", "benz", "bhabha", "bhaskara", "blackwell",
    "bohr", "booth", "borg", "bose", "boyd", "brahmagupta", "brattain", "brown", "buck", "burnell",
    "cannon", "carson", "cartwright", "cerf", "chandrasekhar", "chaplygin", "chatelet", "chatterjee",
    "chebyshev", "clarke", "cohen", "colden", "cori", "cray", "curie", "darwin", "davinci", "dijkstra",
    "dubinsky", "easley", "edison", "einstein", "elion", "engelbart", "euclid", "euler", "faraday",
    "feistel", "fermat", "fermi", "feynman", "franklin", "gagarin", "galileo", "gates", "gauss",
    "germain", "goldberg", "goldstine", "goldwasser", "golick", "goodall", "hamilton", "hawking",
    "heisenberg", "hermann", "hodgkin", "hoover", "hopper", "hugle", "hypatia", "jackson", "jang",
    "jennings", "jepsen", "johnson", "joliot", "jones", "kalam", "kapitsa", "keldysh", "keller",
    "kepler", "khorana", "kilby", "kirch", "knuth", "kowalevski", "lalande", "lamarr", "lamport",
    "leakey", "leavitt", "lewin", "lichterman", "liskov", "lovelace", "lumiere", "mahavira", "margulis",
    "matsumoto", "maxwell", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "merkle", "mirzakhani",
    "montalcini", "moore", "morse", "murdock", "napier", "nash", "neumann", "newton", "nightingale",
    "nobel", "noether", "northcutt", "noyce", "panini", "pare", "pascal", "pasteur", "payne", "perlman",
    "pike", "poincare", "poitras", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "robinson",
    "roentgen", "rosalind", "rubin", "saha", "sammet", "shamir", "shannon", "shaw", "shirley",
    "shockley", "sinoussi", "snyder", "spence", "stonebraker", "sutherland", "swanson", "swartz",
    "swirles", "tesla", "thompson", "torvalds", "turing", "varahamihira", "visvesvaraya", "volhard",
    "wescoff", "wiles", "williams", "wilson", "wing", "wozniak", "wright", "wu", "yalow", "yonath",
)


def validate_name(name: str) -> str:
    """Return the name without its leading '/'; InvalidArgument with Docker's text otherwise."""
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def generate_name(taken: Callable[[str], bool]) -> str:
    """A free ``adjective_surname``; after collisions Docker appends a digit, so do we."""
    rng = random.SystemRandom()
    for attempt in range(64):
        name = f"{rng.choice(_LEFT)}_{rng.choice(_RIGHT)}"
        if name == "boring_wozniak":  # Steve Wozniak is not boring (Docker's rule)
            continue
        if attempt > 8:
            name += str(rng.randint(0, 9))
        if not taken(name):
            return name
    raise Internal("could not generate a unique container name")
