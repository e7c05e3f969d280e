"""The ShopRules product catalogue: a category tree, brands, models, attributes and price ranges.

Plain data; the generator in ``shoprules.py`` samples from it. Surface forms (synonyms, aliases,
unit spellings) live here too so that the generator and the slot normaliser agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Negatable features: feature -> (attribute key, value when present, value when absent,
# query phrasings of "without it" ({f} is the feature word), title words when present / absent).
FEATURES: dict[str, dict] = {
    "laces": {
        "attr": "closure",
        "yes": "laces",
        "no": "slip-on",
        "query": ["without laces", "no laces", "laceless"],
        "title_yes": ["lace-up", "with laces"],
        "title_no": ["slip-on", "laceless"],
    },
    "leather": {
        "attr": "material",
        "yes": "leather",
        "no": "synthetic",
        "query": ["non-leather", "without leather", "not leather", "leather free"],
        "title_yes": ["leather", "genuine leather"],
        "title_no": ["vegan", "synthetic"],
    },
    "straw": {
        "attr": "lid",
        "yes": "straw lid",
        "no": "screw cap",
        "query": ["without straw", "no straw"],
        "title_yes": ["with straw", "straw lid"],
        "title_no": ["screw cap", "leakproof cap"],
    },
    "fragrance": {
        "attr": "scent",
        "yes": "scented",
        "no": "unscented",
        "query": ["fragrance free", "without fragrance", "unscented"],
        "title_yes": ["scented", "fresh scent"],
        "title_no": ["unscented", "sensitive"],
    },
    "sugar": {
        "attr": "sugar",
        "yes": "sweetened",
        "no": "sugar free",
        "query": ["sugar free", "without sugar", "no sugar"],
        "title_yes": ["sweetened", "with sugar"],
        "title_no": ["zero", "unsweetened"],
    },
    "cord": {
        "attr": "power",
        "yes": "corded",
        "no": "cordless",
        "query": ["cordless", "without cord"],
        "title_yes": ["corded", "plug-in"],
        "title_no": ["rechargeable", "battery powered"],
    },
}

# Unit families: unit -> factor to the family's base unit. Sizes in one family are comparable.
UNITS: dict[str, tuple[str, float]] = {
    "ml": ("volume", 1.0),
    "cl": ("volume", 10.0),
    "l": ("volume", 1000.0),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "gb": ("storage", 1.0),
    "tb": ("storage", 1000.0),
    "mm": ("length", 1.0),
    "cm": ("length", 10.0),
    "in": ("screen", 1.0),
}
# Units of real listings (ESCI): US customary units and pack counts besides the metric ones. Kept
# apart from UNITS so that ShopRules never samples them, and here `in` is a length, not a screen size.
# `oz` is an ounce of mass; the ESCI annotator reads it as a fluid ounce next to volumes.
ESCI_UNITS: dict[str, tuple[str, float]] = {
    "mg": ("mass", 0.001),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "oz": ("mass", 28.349523125),
    "lb": ("mass", 453.59237),
    "ml": ("volume", 1.0),
    "cl": ("volume", 10.0),
    "l": ("volume", 1000.0),
    "floz": ("volume", 29.5735295625),
    "pt": ("volume", 473.176473),
    "qt": ("volume", 946.352946),
    "gal": ("volume", 3785.411784),
    "mm": ("length", 1.0),
    "cm": ("length", 10.0),
    "m": ("length", 1000.0),
    "in": ("length", 25.4),
    "ft": ("length", 304.8),
    "gb": ("storage", 1.0),
    "tb": ("storage", 1000.0),
    "pack": ("count", 1.0),
}
# Query and title spellings of each unit ({v} is the number).
UNIT_SURFACE: dict[str, list[str]] = {
    "ml": ["{v}ml", "{v} ml", "{v} milliliter"],
    "cl": ["{v}cl", "{v} cl"],
    "l": ["{v}l", "{v} l", "{v} liter", "{v} litre"],
    "g": ["{v}g", "{v} g", "{v} gram"],
    "kg": ["{v}kg", "{v} kg", "{v} kilo"],
    "gb": ["{v}gb", "{v} gb"],
    "tb": ["{v}tb", "{v} tb"],
    "mm": ["{v}mm", "{v} mm"],
    "cm": ["{v}cm", "{v} cm"],
    "in": ["{v} inch", "{v} in", '{v}"'],
}
# Equivalent size pairs per family, (value, unit) -> same quantity in another unit.
SIZE_OPTIONS: dict[str, list[tuple[str, str]]] = {
    "volume": [
        ("250", "ml"),
        ("330", "ml"),
        ("500", "ml"),
        ("750", "ml"),
        ("1", "l"),
        ("1.5", "l"),
        ("2", "l"),
    ],
    "mass": [("250", "g"), ("500", "g"), ("1", "kg"), ("2", "kg"), ("5", "kg")],
    "storage": [("64", "gb"), ("128", "gb"), ("256", "gb"), ("512", "gb"), ("1", "tb"), ("2", "tb")],
    "length": [("4", "mm"), ("6", "mm"), ("8", "mm"), ("10", "mm"), ("15", "mm")],
    "screen": [("32", "in"), ("43", "in"), ("50", "in"), ("55", "in"), ("65", "in")],
    "shoe": [("7", ""), ("8", ""), ("9", ""), ("10", ""), ("11", ""), ("12", "")],
    "clothing": [("xs", ""), ("s", ""), ("m", ""), ("l", ""), ("xl", ""), ("xxl", "")],
}
SIZE_QUERY_PREFIX = {"shoe": ["size {v}", "size {v}", "us {v}"], "clothing": ["size {v}", "{v}"]}

COLORS: dict[str, list[str]] = {
    "black": ["black"],
    "white": ["white"],
    "red": ["red"],
    "blue": ["blue"],
    "green": ["green"],
    "grey": ["grey", "gray"],
    "pink": ["pink"],
    "yellow": ["yellow"],
    "silver": ["silver"],
    "gold": ["gold"],
    "brown": ["brown"],
    "navy": ["navy", "navy blue"],
    "purple": ["purple"],
    "beige": ["beige"],
    "orange": ["orange"],
}
GENDERS: dict[str, list[str]] = {
    "men": ["men's", "mens", "for men", "men"],
    "women": ["women's", "womens", "for women", "ladies"],
    "kids": ["kids", "children's", "for kids", "boys"],
}
PRICE_PHRASES = ["under {v}", "below {v}", "less than {v}", "under ${v}", "{v} or less", "max {v}"]

# Held back from every ShopRules split but `tail_novel`, which is built from them: tail solved there
# needs the rule, not a memorised surface. The phrasings and unit pairs are new arrangements of words
# the training text uses ("max" is in every price check line; the tiny model's vocabulary is
# word-level, so a word only a held phrasing used would have an untrained embedding). The held
# brands are new words: only non-electronics products carry them, so tail_novel's electronics
# records separate the two kinds of novelty.
HELD_NEGATION: dict[str, str] = {  # feature -> its held query phrasing
    "laces": "laceless",
    "leather": "leather free",
    "straw": "no straw",
    "fragrance": "unscented",
    "sugar": "no sugar",
    "cord": "without cord",
}
HELD_PRICE_PHRASES = ("under ${v}", "max {v}")
HELD_UNIT_PAIRS = frozenset({("l", "cl"), ("cl", "l"), ("mm", "cm")})  # (product's unit, query's unit)
# One brand per non-electronics group (electronics brands are tied to their models).
HELD_BRANDS = frozenset(
    {
        "moment",
        "crocs",
        "h&m",
        "hamilton beach",
        "clinique",
        "west elm",
        "decathlon",
        "asmodee",
        "garden of life",
    }
)


@dataclass(frozen=True)
class ProductType:
    name: str  # canonical leaf name, the `type` slot value
    top: str  # top-level category
    synonyms: tuple[str, ...] = ()  # other query spellings ("tee" for t-shirt)
    size: str | None = None  # key of SIZE_OPTIONS
    gendered: bool = False
    colors: bool = True
    features: tuple[str, ...] = ()  # negatable features (keys of FEATURES)
    price: tuple[float, float] = (10.0, 100.0)
    accessory_of: str | None = None  # main product type this is an accessory of
    brands: str = ""  # key of BRANDS

    @property
    def surfaces(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)


def _t(name: str, top: str, **kw) -> ProductType:
    kw.setdefault("brands", top)
    return ProductType(name, top, **kw)


TYPES: tuple[ProductType, ...] = (
    # electronics
    _t(
        "smartphone",
        "electronics",
        synonyms=("phone", "cell phone", "mobile phone"),
        size="storage",
        price=(150, 1400),
    ),
    _t("tablet", "electronics", synonyms=("tab",), size="storage", price=(120, 1200)),
    _t(
        "laptop", "electronics", synonyms=("notebook", "notebook computer"), size="storage", price=(300, 2500)
    ),
    _t("earbuds", "electronics", synonyms=("earphones", "in-ear headphones"), price=(20, 300)),
    _t("headphones", "electronics", synonyms=("over-ear headphones", "headset"), price=(25, 450)),
    _t("smartwatch", "electronics", synonyms=("smart watch",), price=(80, 800)),
    _t("tv", "electronics", synonyms=("television", "smart tv"), size="screen", price=(200, 2200)),
    _t("camera", "electronics", synonyms=("digital camera",), price=(250, 2500)),
    # electronics accessories
    _t("phone case", "accessories", synonyms=("phone cover",), accessory_of="smartphone", price=(8, 60)),
    _t(
        "screen protector",
        "accessories",
        synonyms=("tempered glass",),
        accessory_of="smartphone",
        price=(5, 30),
    ),
    _t("tablet case", "accessories", synonyms=("tablet cover",), accessory_of="tablet", price=(10, 70)),
    _t(
        "laptop sleeve",
        "accessories",
        synonyms=("laptop bag",),
        accessory_of="laptop",
        features=("leather",),
        price=(15, 90),
    ),
    _t("earbuds case", "accessories", synonyms=("earbud cover",), accessory_of="earbuds", price=(6, 40)),
    _t(
        "watch band",
        "accessories",
        synonyms=("watch strap",),
        accessory_of="smartwatch",
        features=("leather",),
        price=(8, 60),
    ),
    _t("tv wall mount", "accessories", synonyms=("tv mount",), accessory_of="tv", price=(20, 150)),
    _t("camera lens", "accessories", synonyms=("lens",), accessory_of="camera", price=(90, 1500)),
    # footwear
    _t(
        "running shoes",
        "footwear",
        synonyms=("running sneakers", "jogging shoes"),
        size="shoe",
        gendered=True,
        features=("laces", "leather"),
        price=(40, 220),
    ),
    _t(
        "sneakers",
        "footwear",
        synonyms=("trainers", "tennis shoes"),
        size="shoe",
        gendered=True,
        features=("laces", "leather"),
        price=(35, 200),
    ),
    _t(
        "boots",
        "footwear",
        synonyms=("ankle boots",),
        size="shoe",
        gendered=True,
        features=("laces", "leather"),
        price=(50, 300),
    ),
    _t(
        "hiking boots",
        "footwear",
        synonyms=("trekking boots",),
        size="shoe",
        gendered=True,
        features=("laces", "leather"),
        price=(60, 320),
    ),
    _t(
        "sandals",
        "footwear",
        synonyms=("flip flops",),
        size="shoe",
        gendered=True,
        features=("leather",),
        price=(15, 120),
    ),
    _t("slippers", "footwear", synonyms=("house shoes",), size="shoe", gendered=True, price=(10, 80)),
    # apparel
    _t("t-shirt", "apparel", synonyms=("tee", "tshirt"), size="clothing", gendered=True, price=(8, 60)),
    _t("hoodie", "apparel", synonyms=("hooded sweatshirt",), size="clothing", gendered=True, price=(20, 120)),
    _t("jeans", "apparel", synonyms=("denim pants",), size="clothing", gendered=True, price=(25, 150)),
    _t(
        "jacket",
        "apparel",
        synonyms=("coat",),
        size="clothing",
        gendered=True,
        features=("leather",),
        price=(40, 400),
    ),
    _t("dress", "apparel", synonyms=("gown",), size="clothing", price=(25, 250)),
    _t("socks", "apparel", synonyms=("ankle socks",), size="clothing", gendered=True, price=(5, 30)),
    # kitchen
    _t(
        "water bottle",
        "kitchen",
        synonyms=("drink bottle", "sports bottle"),
        size="volume",
        features=("straw",),
        price=(8, 50),
    ),
    _t(
        "coffee maker",
        "kitchen",
        synonyms=("coffee machine",),
        size="volume",
        features=("cord",),
        price=(30, 500),
    ),
    _t(
        "blender", "kitchen", synonyms=("smoothie maker",), size="volume", features=("cord",), price=(25, 400)
    ),
    _t("frying pan", "kitchen", synonyms=("skillet",), size="length", price=(15, 150)),
    _t("travel mug", "kitchen", synonyms=("tumbler",), size="volume", features=("straw",), price=(8, 45)),
    _t(
        "kettle", "kitchen", synonyms=("electric kettle",), size="volume", features=("cord",), price=(15, 120)
    ),
    # beauty
    _t("shampoo", "beauty", synonyms=("hair wash",), size="volume", features=("fragrance",), price=(4, 40)),
    _t(
        "perfume",
        "beauty",
        synonyms=("eau de parfum", "fragrance spray"),
        size="volume",
        gendered=True,
        price=(20, 200),
    ),
    _t(
        "face cream",
        "beauty",
        synonyms=("moisturizer", "face moisturiser"),
        size="volume",
        features=("fragrance",),
        price=(8, 90),
    ),
    _t(
        "sunscreen",
        "beauty",
        synonyms=("sun cream", "sunblock"),
        size="volume",
        features=("fragrance",),
        price=(6, 45),
    ),
    _t("lipstick", "beauty", synonyms=("lip color",), price=(5, 45)),
    # home
    _t("bed sheets", "home", synonyms=("sheet set",), price=(20, 150)),
    _t("pillow", "home", synonyms=("bed pillow",), price=(10, 90)),
    _t("desk lamp", "home", synonyms=("table lamp",), features=("cord",), price=(15, 120)),
    _t("bath towel", "home", synonyms=("towel",), price=(8, 60)),
    _t("curtains", "home", synonyms=("drapes",), price=(15, 120)),
    # sports
    _t("yoga mat", "sports", synonyms=("exercise mat",), size="length", price=(12, 90)),
    _t("dumbbells", "sports", synonyms=("hand weights",), size="mass", price=(15, 200)),
    _t("bicycle", "sports", synonyms=("bike",), gendered=True, price=(150, 2000)),
    _t("tennis racket", "sports", synonyms=("tennis racquet",), price=(25, 250)),
    _t("backpack", "sports", synonyms=("rucksack",), features=("leather",), price=(20, 180)),
    # toys
    _t("building blocks", "toys", synonyms=("building bricks",), price=(10, 150)),
    _t("jigsaw puzzle", "toys", synonyms=("puzzle",), price=(8, 40)),
    _t("doll", "toys", synonyms=("fashion doll",), price=(10, 80)),
    _t("board game", "toys", synonyms=("family game",), price=(12, 70)),
    # grocery
    _t(
        "coffee beans",
        "grocery",
        synonyms=("whole bean coffee",),
        size="mass",
        features=("sugar",),
        price=(6, 40),
    ),
    _t("olive oil", "grocery", synonyms=("extra virgin olive oil",), size="volume", price=(5, 35)),
    _t("green tea", "grocery", synonyms=("green tea bags",), features=("sugar",), price=(3, 25)),
    _t(
        "protein powder",
        "grocery",
        synonyms=("whey protein",),
        size="mass",
        features=("sugar",),
        price=(15, 80),
    ),
)
TYPE_BY_NAME: dict[str, ProductType] = {t.name: t for t in TYPES}

BRANDS: dict[str, list[str]] = {
    "electronics": [
        "apple",
        "samsung",
        "sony",
        "google",
        "lg",
        "xiaomi",
        "oneplus",
        "motorola",
        "lenovo",
        "dell",
        "hp",
        "asus",
        "acer",
        "bose",
        "jbl",
        "garmin",
        "canon",
        "nikon",
        "panasonic",
        "fujifilm",
    ],
    "accessories": [
        "otterbox",
        "spigen",
        "belkin",
        "anker",
        "zagg",
        "esr",
        "incase",
        "case-mate",
        "mous",
        "nomad",
        "sanwu",
        "vivo mounts",
        "mounting dream",
        "tamron",
        "sigma",
        "moment",
    ],
    "footwear": [
        "nike",
        "adidas",
        "new balance",
        "asics",
        "puma",
        "reebok",
        "skechers",
        "vans",
        "converse",
        "brooks",
        "saucony",
        "hoka",
        "salomon",
        "merrell",
        "timberland",
        "dr martens",
        "ugg",
        "crocs",
    ],
    "apparel": [
        "levis",
        "hanes",
        "gildan",
        "champion",
        "carhartt",
        "patagonia",
        "the north face",
        "columbia",
        "uniqlo",
        "gap",
        "tommy hilfiger",
        "calvin klein",
        "ralph lauren",
        "under armour",
        "zara",
        "h&m",
    ],
    "kitchen": [
        "hydro flask",
        "contigo",
        "stanley",
        "yeti",
        "nalgene",
        "cuisinart",
        "breville",
        "ninja",
        "vitamix",
        "keurig",
        "nespresso",
        "tefal",
        "lodge",
        "oxo",
        "kitchenaid",
        "hamilton beach",
    ],
    "beauty": [
        "loreal",
        "dove",
        "pantene",
        "head and shoulders",
        "nivea",
        "neutrogena",
        "cerave",
        "olay",
        "maybelline",
        "revlon",
        "chanel",
        "dior",
        "la roche posay",
        "garnier",
        "aveeno",
        "clinique",
    ],
    "home": [
        "ikea",
        "brooklinen",
        "parachute",
        "casper",
        "purple",
        "tempur",
        "philips",
        "lutron",
        "amazon basics",
        "utopia",
        "mainstays",
        "threshold",
        "pottery barn",
        "west elm",
    ],
    "sports": [
        "manduka",
        "gaiam",
        "liforme",
        "bowflex",
        "cap barbell",
        "trek",
        "giant",
        "specialized",
        "wilson",
        "babolat",
        "head",
        "yonex",
        "osprey",
        "deuter",
        "jansport",
        "decathlon",
    ],
    "toys": [
        "lego",
        "mega bloks",
        "ravensburger",
        "melissa and doug",
        "barbie",
        "mattel",
        "hasbro",
        "fisher price",
        "playmobil",
        "hape",
        "buffalo games",
        "asmodee",
    ],
    "grocery": [
        "lavazza",
        "illy",
        "starbucks",
        "peets",
        "bertolli",
        "colavita",
        "california olive ranch",
        "twinings",
        "lipton",
        "bigelow",
        "optimum nutrition",
        "myprotein",
        "dymatize",
        "garden of life",
    ],
}
# Query spellings of brands besides the canonical one.
BRAND_ALIASES: dict[str, list[str]] = {
    "hp": ["hewlett packard"],
    "levis": ["levi's", "levi strauss"],
    "loreal": ["l'oreal"],
    "h&m": ["h and m", "hm"],
    "dr martens": ["doc martens", "docs"],
    "head and shoulders": ["head & shoulders"],
    "the north face": ["north face", "tnf"],
    "new balance": ["nb"],
    "peets": ["peet's"],
    "melissa and doug": ["melissa & doug"],
    "amazon basics": ["amazonbasics"],
    "lg": ["l.g."],
}

# Models/series for electronics: model -> (brand, type, product-line aliases that imply it).
MODELS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "iphone 15": ("apple", "smartphone", ()),
    "iphone 14": ("apple", "smartphone", ()),
    "iphone 13": ("apple", "smartphone", ()),
    "galaxy s24": ("samsung", "smartphone", ()),
    "galaxy s23": ("samsung", "smartphone", ()),
    "galaxy a54": ("samsung", "smartphone", ()),
    "pixel 8": ("google", "smartphone", ()),
    "pixel 7": ("google", "smartphone", ()),
    "xperia 1": ("sony", "smartphone", ()),
    "redmi note 13": ("xiaomi", "smartphone", ()),
    "oneplus 12": ("oneplus", "smartphone", ()),
    "moto g": ("motorola", "smartphone", ()),
    "ipad air": ("apple", "tablet", ()),
    "ipad pro": ("apple", "tablet", ()),
    "ipad mini": ("apple", "tablet", ()),
    "galaxy tab s9": ("samsung", "tablet", ()),
    "pixel tablet": ("google", "tablet", ()),
    "lenovo tab p11": ("lenovo", "tablet", ()),
    "macbook air": ("apple", "laptop", ()),
    "macbook pro": ("apple", "laptop", ()),
    "xps 13": ("dell", "laptop", ()),
    "thinkpad x1": ("lenovo", "laptop", ()),
    "spectre x360": ("hp", "laptop", ()),
    "zenbook 14": ("asus", "laptop", ()),
    "swift 3": ("acer", "laptop", ()),
    "galaxy book 3": ("samsung", "laptop", ()),
    "airpods pro": ("apple", "earbuds", ("airpods",)),
    "airpods 3": ("apple", "earbuds", ()),
    "galaxy buds 2": ("samsung", "earbuds", ("galaxy buds",)),
    "pixel buds pro": ("google", "earbuds", ("pixel buds",)),
    "wf-1000xm5": ("sony", "earbuds", ()),
    "quietcomfort earbuds": ("bose", "earbuds", ()),
    "tune 230nc": ("jbl", "earbuds", ()),
    "wh-1000xm5": ("sony", "headphones", ()),
    "quietcomfort 45": ("bose", "headphones", ()),
    "airpods max": ("apple", "headphones", ()),
    "live 660nc": ("jbl", "headphones", ()),
    "apple watch series 9": ("apple", "smartwatch", ("apple watch",)),
    "galaxy watch 6": ("samsung", "smartwatch", ("galaxy watch",)),
    "pixel watch 2": ("google", "smartwatch", ("pixel watch",)),
    "forerunner 265": ("garmin", "smartwatch", ("forerunner",)),
    "fenix 7": ("garmin", "smartwatch", ()),
    "bravia x90l": ("sony", "tv", ("bravia",)),
    "oled c3": ("lg", "tv", ()),
    "qled q80c": ("samsung", "tv", ()),
    "eos r6": ("canon", "camera", ()),
    "eos r50": ("canon", "camera", ()),
    "z6 ii": ("nikon", "camera", ()),
    "alpha a7 iv": ("sony", "camera", ()),
    "x-t5": ("fujifilm", "camera", ()),
    "lumix g9": ("panasonic", "camera", ()),
}


@dataclass
class Product:
    """A catalogue product: what a shop's product index holds."""

    title: str
    type: str
    category: str
    brand: str
    price: float
    model: str | None = None
    color: str | None = None
    gender: str | None = None
    size: str | None = None  # canonical "value unit" or "value"
    accessory_of: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    bullets: list[str] = field(default_factory=list)

    def to_record(self) -> dict:
        out: dict = {"title": self.title, "category": self.category, "brand": self.brand}
        for key in ("model", "color", "gender", "size"):
            value = getattr(self, key)
            if value:
                out[key] = value
        out["price"] = round(self.price, 2)
        if self.attributes:
            out["attributes"] = dict(sorted(self.attributes.items()))
        if self.bullets:
            out["bullets"] = list(self.bullets)
        return out


def catalog_corpus() -> list[str]:
    """Every surface form the catalogue can produce, for building a closed word-level vocabulary."""
    texts: list[str] = []
    for t in TYPES:
        texts += [*t.surfaces, t.top, f"{t.top} > {t.name}"]
    for brand_list in BRANDS.values():
        texts += brand_list
    for alias_list in BRAND_ALIASES.values():
        texts += alias_list
    for model, (_, _, aliases) in MODELS.items():
        texts += [model, *aliases]
    for names in COLORS.values():
        texts += names
    for names in GENDERS.values():
        texts += names
    texts += ["unisex", "has", "no", "for", "size", "us", "max", "$"]
    for info in FEATURES.values():
        texts += [
            info["attr"],
            info["yes"],
            info["no"],
            *info["query"],
            *info["title_yes"],
            *info["title_no"],
        ]
    for spellings in UNIT_SURFACE.values():
        texts += [s.format(v="1") for s in spellings]
    texts += [p.format(v="50") for p in PRICE_PHRASES]
    return texts
