"""mappings/: the archetype projection is a function matching the SPEC, and each CrossNER domain
file names exactly the benchmark's labels, each defined, with a sane ``more_specific`` relation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from core.mappings import (
    CROSSNER_DOMAINS,
    DOMAINS_DIR,
    MAPPINGS_DIR,
    MappingError,
    list_domains,
    load_archetypes,
    load_domain,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ARCHETYPES_YAML = MAPPINGS_DIR / "archetypes.yaml"

# ---- expectations written out by hand from SPEC.md ---------------------------------------------

ARCHETYPE_ORDER = [
    "person", "organization", "location", "biology", "medicine", "food", "vehicle",
    "creative_work", "event", "artifact", "computer_science", "political", "science", "misc",
]

# SPEC.md, "Archetypes (paper Table 4)": archetype -> fine-grained types, spelling kept.
SPEC_TABLE = {
    "person": ["actor", "character", "director", "mythical figure", "person"],
    "organization": ["organization", "media"],
    "location": ["Amenity", "Location", "location", "exact location", "geographical phenomenon",
                 "geographical social political", "facility", "road", "river", "area"],
    "biology": ["animal", "plant", "biology"],
    "medicine": ["Anatomy", "DNA", "RNA", "GENE", "protein", "cell line", "cell type", "disease",
                 "Disease", "biomedical", "medicine"],
    "food": ["Cuisine", "Dish", "food", "Restaurant Name", "review"],
    "vehicle": ["vehicle", "vehicle model", "vehicle range", "vehicle type", "vehicle velocity",
                "brand of vehicle", "color of vehicle", "orientation of vehicle",
                "position of vehicle", "estate car", "SUV", "MPV", "hatchback", "roadster",
                "sports car", "sedan", "coupe", "trailer", "van", "truck", "motorcycle",
                "vintage car", "bus"],
    "creative_work": ["song", "work of art", "title", "movie", "genre", "creative_work"],
    "event": ["event", "plot"],
    "artifact": ["instrument", "product", "artifact"],
    "computer_science": ["application", "enabling technology", "concept or principle",
                         "process characterization", "process parameter", "machine or equipment",
                         "engineering feature", "machanical property", "manufacturing process",
                         "manufacturing standard", "computer_science"],
    "political": ["law", "national religious political", "political"],
    "science": ["astronomical object", "language", "material", "Chemical", "science"],
    "misc": ["misc", "else"],
}

# SPEC.md: IEPile's Chinese types in the authors' mapping.
SPEC_CHINESE = {
    "人名": "person", "姓名": "person", "人物": "person",
    "公司": "organization", "政府": "organization", "机构": "organization",
    "组织机构": "organization",
    "景点": "location", "地址": "location", "地理位置": "location", "籍贯": "location",
    "国籍": "location",
    "书名": "creative_work", "游戏": "creative_work", "电影": "creative_work",
    "民族": "political",
    "专业": "science",
    "学历": "misc", "职位": "misc",
}

SPEC_DROPPED = {"cardinal", "ordinal", "percent", "money", "Price", "quantity", "average ratings",
                "Rating", "rating", "date", "time", "year", "Hours"}

# SPEC.md, "Evaluation": the CrossNER label set of each domain.
SPEC_LABELS = {
    "ai": {"algorithm", "conference", "country", "field", "location", "metrics", "misc",
           "organisation", "person", "product", "programlang", "researcher", "task",
           "university"},
    "literature": {"award", "book", "country", "event", "literarygenre", "location", "magazine",
                   "misc", "organisation", "person", "poem", "writer"},
    "music": {"album", "award", "band", "country", "event", "location", "misc", "musicalartist",
              "musicalinstrument", "musicgenre", "organisation", "person", "song"},
    "politics": {"country", "election", "event", "location", "misc", "organisation", "person",
                 "politicalparty", "politician"},
    "science": {"academicjournal", "astronomicalobject", "award", "chemicalcompound",
                "chemicalelement", "country", "discipline", "enzyme", "event", "location", "misc",
                "organisation", "person", "protein", "scientist", "theory", "university"},
}

# Natural-language names of the compound raw tags (all other tags keep their raw spelling).
NATURAL_NAMES = {
    "programlang": "programming language", "musicalartist": "musical artist",
    "politicalparty": "political party", "literarygenre": "literary genre",
    "musicgenre": "music genre", "musicalinstrument": "musical instrument",
    "academicjournal": "academic journal", "astronomicalobject": "astronomical object",
    "chemicalcompound": "chemical compound", "chemicalelement": "chemical element",
    "misc": "miscellaneous", "organisation": "organisation",
}

# Refinements every reader would expect (the SPEC's own examples and the obvious person/location
# subtypes); the files may list more.
REQUIRED_MORE_SPECIFIC = {
    "ai": {("researcher", "person"), ("university", "organisation"), ("country", "location")},
    "literature": {("writer", "person"), ("country", "location")},
    "music": {("musicalartist", "person"), ("band", "organisation"), ("country", "location")},
    "politics": {("politician", "person"), ("politicalparty", "organisation"),
                 ("election", "event"), ("country", "location")},
    "science": {("scientist", "person"), ("university", "organisation"),
                ("country", "location")},
}


# ---- helpers -----------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (plain PyYAML keeps the last one silently)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise AssertionError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _strict_load(path: Path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_StrictLoader)  # a SafeLoader subclass


def _bio_types(path: Path) -> set[str]:
    types = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2 and parts[1] != "O":
                types.add(parts[1].split("-", 1)[1])
    return types


@pytest.fixture(scope="module")
def raw_archetypes() -> dict:
    return _strict_load(ARCHETYPES_YAML)


@pytest.fixture(scope="module")
def archetypes():
    return load_archetypes()


# ---- archetypes.yaml ---------------------------------------------------------------------------

def test_archetypes_in_spec_order_with_definitions(raw_archetypes, archetypes):
    assert raw_archetypes["version"] == 1
    assert list(raw_archetypes["archetypes"]) == ARCHETYPE_ORDER
    assert archetypes.names == ARCHETYPE_ORDER
    for name, definition in archetypes.definitions.items():
        assert len(definition.split()) >= 8, f"{name}: definition too short: {definition!r}"


def test_projection_is_a_function_at_the_raw_yaml_level(raw_archetypes):
    """Count every listed type across all lists: none may appear twice, even under the same
    archetype (the loader would accept a same-archetype repeat silently)."""
    projection = raw_archetypes["projection"]
    assert list(projection) == ARCHETYPE_ORDER  # one list per archetype, none missing
    counts = Counter(t for types in projection.values() for t in types)
    repeated = {t: n for t, n in counts.items() if n > 1}
    assert not repeated, f"types listed more than once: {repeated}"
    for archetype, types in projection.items():
        assert types, f"archetype {archetype!r} projects no type"
        assert all(isinstance(t, str) and t == t.strip() and t for t in types), archetype


def test_projection_matches_the_spec_table_exactly(archetypes):
    expected = {t: a for a, types in SPEC_TABLE.items() for t in types} | SPEC_CHINESE
    assert len(expected) == sum(len(v) for v in SPEC_TABLE.values()) + len(SPEC_CHINESE)
    mismatched = {t: (archetypes.project(t), a) for t, a in expected.items()
                  if archetypes.project(t) != a}
    assert not mismatched, f"type: (projected, expected): {mismatched}"
    assert archetypes.projection == expected  # nothing beyond the SPEC either


def test_projection_is_exact_match(archetypes):
    assert archetypes.project("machanical property") == "computer_science"  # sic, as in source
    assert archetypes.project("mechanical property") is None
    assert archetypes.project("Location") == archetypes.project("location") == "location"
    assert archetypes.project("LOCATION") is None
    assert archetypes.project(" Amenity ") == "location"
    assert archetypes.project("amenity") is None
    assert archetypes.project("misc") == archetypes.project("else") == "misc"


def test_dropped_types_are_the_spec_number_and_time_types(raw_archetypes, archetypes):
    assert len(raw_archetypes["dropped_types"]) == len(SPEC_DROPPED)
    assert archetypes.dropped_types == SPEC_DROPPED
    for fine in SPEC_DROPPED:
        assert archetypes.is_dropped(fine)
        assert archetypes.project(fine) is None
    assert not archetypes.is_dropped("Date")  # exact match here too


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_loader_rejects_a_type_under_two_archetypes(tmp_path):
    bad = _write(tmp_path / "archetypes.yaml", """\
version: 1
archetypes:
  person: {definition: A named human being.}
  location: {definition: A named place.}
projection:
  person: [person, character]
  location: [location, character]
""")
    with pytest.raises(MappingError, match=r"'character' projects to both 'person' and 'location'"):
        load_archetypes(bad)


def test_loader_rejects_dropped_and_projected(tmp_path):
    bad = _write(tmp_path / "archetypes.yaml", """\
archetypes:
  misc: {definition: Anything else.}
projection:
  misc: [misc, date]
dropped_types: [date]
""")
    with pytest.raises(MappingError, match="both dropped and projected"):
        load_archetypes(bad)


def test_loader_rejects_projection_to_an_undefined_archetype(tmp_path):
    bad = _write(tmp_path / "archetypes.yaml", """\
archetypes:
  misc: {definition: Anything else.}
projection:
  musc: [misc]
""")
    with pytest.raises(MappingError, match="not a defined archetype"):
        load_archetypes(bad)


# ---- domains/<name>.yaml -----------------------------------------------------------------------

def test_crossner_domains_are_all_present():
    assert set(CROSSNER_DOMAINS) <= set(list_domains())
    for domain in CROSSNER_DOMAINS:
        assert (DOMAINS_DIR / f"{domain}.yaml").is_file()


@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_domain_files_have_no_duplicate_keys(domain):
    data = _strict_load(DOMAINS_DIR / f"{domain}.yaml")
    assert data["name"] == domain
    assert data["description"].strip()
    assert data["sentences"] == f"crossner/{domain}/test.jsonl"


@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_domain_labels_equal_the_spec(domain):
    loaded = load_domain(domain)
    assert loaded.name == domain
    assert set(loaded.labels) == SPEC_LABELS[domain]
    assert "misc" in loaded.label_names()
    assert "misc" not in loaded.label_names(include_misc=False)
    assert loaded.sentences_path("/data") == Path("/data") / "crossner" / domain / "test.jsonl"


@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_domain_labels_have_names_and_definitions(domain):
    loaded = load_domain(domain)
    for tag, label in loaded.labels.items():
        assert label.tag == tag
        assert label.name == NATURAL_NAMES.get(tag, tag)
        assert len(label.definition.split()) >= 8, f"{domain}.{tag}: definition too short"


@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_more_specific_is_a_sane_relation(domain):
    loaded = load_domain(domain)
    pairs = {(specific, general) for specific, generals in loaded.more_specific.items()
             for general in generals}
    for specific, general in pairs:
        assert specific in loaded.labels and general in loaded.labels
        assert specific != general, f"{domain}: {specific} refines itself"
        assert (general, specific) not in pairs, f"{domain}: {specific} <-> {general} cycle"
        assert "misc" not in (specific, general)
    for specific, generals in loaded.more_specific.items():
        assert len(set(generals)) == len(generals), f"{domain}: {specific} repeats a label"
    assert REQUIRED_MORE_SPECIFIC[domain] <= pairs


def test_loader_rejects_more_specific_with_an_unknown_label(tmp_path):
    _write(tmp_path / "domain.yaml", """\
labels:
  person: {definition: A named human being.}
more_specific:
  researcher: [person]
""")
    with pytest.raises(MappingError, match="unknown label 'researcher'"):
        load_domain(tmp_path)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_label_sets_match_the_tags_in_the_data(domain, split):
    source = SHARED_DATA / "crossner" / domain / f"{split}.txt"
    if not source.is_file():
        pytest.fail(f"real CrossNER data not found at {source} (the checkout needs ../shared)")
    assert _bio_types(source) == set(load_domain(domain).labels)


# ---- loading a domain by path, and unknown names -----------------------------------------------

_FOLDER_DOMAIN = """\
name: recipes
sentences: sentences.jsonl
labels:
  dish: {name: dish, definition: A named prepared dish.}
  ingredient: {definition: A food item used to cook with.}
  misc: {name: miscellaneous, definition: Anything else.}
more_specific: {}
"""


def test_load_domain_from_a_folder(tmp_path):
    folder = tmp_path / "recipes_domain"
    folder.mkdir()
    _write(folder / "domain.yaml", _FOLDER_DOMAIN)
    _write(folder / "sentences.jsonl", '{"id": "r-0", "tokens": ["pad", "thai"], "entities": '
                                       '[{"start": 0, "end": 2, "type": "dish"}]}\n')
    for ref in (folder, str(folder), folder / "domain.yaml"):
        loaded = load_domain(ref)
        assert loaded.name == "recipes"
        assert loaded.label_names() == ["dish", "ingredient", "misc"]
        assert loaded.labels["ingredient"].name == "ingredient"  # defaults to the tag
        assert loaded.more_specific == {}
        assert loaded.sentences_path("/elsewhere") == folder / "sentences.jsonl"


def test_domain_name_defaults_to_folder_or_file_name(tmp_path):
    folder = tmp_path / "pets"
    folder.mkdir()
    _write(folder / "domain.yaml", "labels:\n  pet: {definition: A named animal companion.}\n")
    assert load_domain(folder).name == "pets"
    single = _write(tmp_path / "plants.yaml", "labels:\n  plant: {definition: A named plant.}\n")
    assert load_domain(single).name == "plants"


def test_unknown_domain_lists_the_known_ones():
    with pytest.raises(MappingError, match="unknown domain 'klingon'") as info:
        load_domain("klingon")
    for domain in CROSSNER_DOMAINS:
        assert domain in str(info.value)


# ---- labels that answer to the same word ------------------------------------------------------

@pytest.mark.parametrize(("labels", "first", "second", "word"), [
    # Two names equal up to case.
    ("  org: {name: Organisation, definition: A company.}\n"
     "  band: {name: organisation, definition: A music group.}\n", "org", "band", "organisation"),
    # A name equal to another label's raw tag (calibration maps names and tags).
    ("  person: {definition: A named human being.}\n"
     "  musicalartist: {name: Person, definition: A performer.}\n",
     "person", "musicalartist", "person"),
    # Two raw tags equal up to case.
    ("  band: {name: group, definition: A music group.}\n"
     "  Band: {name: music band, definition: A music group again.}\n", "band", "Band", "band"),
])
def test_loader_rejects_labels_that_answer_to_the_same_word(tmp_path, labels, first, second,
                                                             word):
    path = _write(tmp_path / "domain.yaml", "labels:\n" + labels)
    with pytest.raises(MappingError) as info:
        load_domain(tmp_path)
    assert str(info.value) == (
        f"{path}: labels {first!r} and {second!r} both answer to {word!r} (names and tags match "
        f"case-insensitively): one of them could never be predicted")


def test_a_label_may_be_named_like_its_own_tag(tmp_path):
    _write(tmp_path / "domain.yaml", "labels:\n"
           "  person: {name: Person, definition: A named human being.}\n"
           "  programlang: {name: programming language, definition: A language for code.}\n")
    assert [label.name for label in load_domain(tmp_path).labels.values()] == [
        "Person", "programming language"]
