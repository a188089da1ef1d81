"""Matching advisories to watched devices: table-driven, every rule with its negatives."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.match import (
    ManufacturerAliases,
    load_aliases,
    manufacturers_of,
    match_advisory,
    match_all,
    model_tokens,
)
from aggregator.models import Advisory, Match, Product, SourceKind, WatchedDevice
from aggregator.sources.files import read_advisory_file

FIXTURES = Path(__file__).parent / "fixtures" / "match"
ALIASES = load_aliases()


def prod(vendor: str, name: str, version: str = "vers:all/*", status: str = "known_affected") -> Product:
    return Product(vendor=vendor, name=name, version=version, status=status)


def csaf(*products: Product, advisory_id: str = "ICSMA-99-001-01", title: str = "", summary: str = "") -> Advisory:
    return Advisory(
        source="csaf",
        kind=SourceKind.CSAF,
        entry_id=advisory_id,
        advisory_id=advisory_id,
        title=title or advisory_id,
        url=None,
        published=None,
        summary=summary,
        products=products,
    )


def item(
    title: str, summary: str = "", *, manufacturer: str | None = None, products: tuple[Product, ...] = ()
) -> Advisory:
    return Advisory(
        source="feed",
        kind=SourceKind.OPENFDA if products else SourceKind.RSS,
        entry_id=f"https://example.org/{abs(hash(title))}",
        advisory_id=None,
        title=title,
        url=None,
        published=None,
        summary=summary,
        products=products,
        manufacturer=manufacturer,
    )


def dev(manufacturer: str, *models: str, firmware: str | None = None) -> WatchedDevice:
    return WatchedDevice(name="dev", manufacturer=manufacturer, models=models, firmware=firmware)


def one(advisory: Advisory, device: WatchedDevice, aliases: ManufacturerAliases = ALIASES) -> Match | None:
    matches = match_advisory(advisory, [device], aliases)
    assert len(matches) <= 1
    return matches[0] if matches else None


# --- manufacturers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watched", "vendor", "product", "model", "advisory_id", "want"),
    [
        ("BD", "Becton, Dickinson and Company (BD)", "Alaris 8000 PC unit", "Alaris 8000", "ICSMA-1", True),
        ("Becton Dickinson", "CareFusion", "Alaris 8000 PC unit", "Alaris 8000", "ICSMA-1", True),  # acquired
        (
            "BD",
            "CareFusion, Becton, Dickinson and Company (BD)",
            "Pyxis SupplyStation",
            "Pyxis SupplyStation",
            "X",
            True,
        ),
        ("GE Healthcare", "General Electric (GE)", "GE Aisys", "Aisys CS2", "ICSMA-1", True),
        ("GE", "GE Healthcare", "Optima 520", "Optima 520", "ICSMA-1", True),
        ("Abbott", "St. Jude Medical", "RF models EX1150", "Merlin@home EX1150", "ICSMA-1", True),  # acquired
        ("Baxter", "Hillrom", "Welch Allyn Connex Spot Monitor (CSM)", "Connex Spot Monitor", "ICSMA-1", True),
        (
            "Baxter",
            "Welch Allyn",
            "Connex Spot Monitor",
            "Connex Spot Monitor",
            "ICSA-1",
            True,
        ),  # Baxter ⊃ Hillrom ⊃ WA
        ("Philips", "Phillips", "IntelliSpace Cardiovascular", "IntelliSpace Cardiovascular", "ICSMA-1", True),
        ("Medtronic", "Medtronic ", "Micro Clinician", "Micro Clinician", "ICSMA-1", True),  # trailing space
        ("GE Healthcare", "Silex Technology and GE Healthcare", "GEH-500", "GEH-500", "ICSMA-1", True),  # shared node
        ("Innokas", "Innokas YhtymÃ¤ Oy", "VC150", "VC150", "ICSMA-1", True),  # mojibake
        ("Acme", "Acme Medical Inc.", "Widget 300", "Widget 300", "ICSMA-1", True),  # not listed: whole words
        ("Hamilton Medical", "Hamilton Medical AG", "T1 Ventilator", "HAMILTON-T1", "ICSMA-1", True),
        # the vendor is the parent: the acquired company must be named, or the advisory be medical
        ("Welch Allyn", "Baxter", "Welch Allyn Connex Spot Monitor", "Connex Spot Monitor", "ICSA-1", True),
        ("Welch Allyn", "Baxter", "Connex Spot Monitor", "Connex Spot Monitor", "ICSMA-1", True),
        ("Welch Allyn", "Baxter", "Connex Spot Monitor", "Connex Spot Monitor", "ICSA-1", False),
        ("St. Jude Medical", "Abbott Laboratories", "Assurity MRI", "Assurity MRI", "ICSMA-1", True),
        # other manufacturers
        ("Philips", "Rockwell Automation", "IntelliVue MX40", "IntelliVue MX40", "ICSA-1", False),
        ("Abbott", "Medtronic", "Merlin@home EX1150", "Merlin@home EX1150", "ICSMA-1", False),
        ("Acme", "Acmeco Industries", "Widget 300", "Widget 300", "ICSMA-1", False),  # not a whole word
        ("Baxter", "Becton, Dickinson and Company (BD)", "Sigma Spectrum", "Sigma Spectrum", "ICSMA-1", False),
    ],
)
def test_manufacturer(watched: str, vendor: str, product: str, model: str, advisory_id: str, want: bool) -> None:
    advisory = csaf(prod(vendor, product), advisory_id=advisory_id)
    assert (one(advisory, dev(watched, model)) is not None) is want


def test_several_vendors_in_one_advisory_each_checked_against_its_own_products() -> None:
    advisory = csaf(prod("Wind River", "VxWorks 6.5"), prod("Philips", "IntelliVue MX40 Patient Worn Monitor"))
    assert one(advisory, dev("Philips", "VxWorks 6.5")) is None
    assert one(advisory, dev("Philips", "IntelliVue MX40")) is not None


# --- models ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("models", "product", "version", "want"),
    [
        # slash lists, with and without a code prefix
        (("Paradigm 522",), "MiniMed Paradigm 522/722 pumps", "vers:all/*", True),
        (("Paradigm 722",), "MiniMed Paradigm 522/722 pumps", "vers:all/*", True),
        (("MMT-722",), "MMT-522 / MMT-722 Paradigm REAL-TIME", "vers:all/*", True),
        (("MMT-722",), "MiniMed Paradigm 522/722 pumps", "vers:all/*", True),  # MMT-722 is the 722
        (("MMT-622",), "MiniMed Paradigm 522/722 pumps", "vers:all/*", False),
        (("MX700",), "IntelliVue MP monitors MX800/700/600 WLAN", "vers:all/*", True),  # prefix carried along
        (("M8003A",), "IntelliVue MP monitors MP20-MP90 (M8001A/2A/3A/4A) WLAN", "vers:all/*", True),  # "2A" = M8002A
        # word boundaries
        (("Paradigm 722",), "MiniMed Paradigm 7220 pump", "vers:all/*", False),
        (("Paradigm 722",), "MiniMed Paradigm 72 pump", "vers:all/*", False),
        # variant suffixes are different models; "(K)" means both
        (("Paradigm 522",), "MiniMed Paradigm 522K/722K pumps", "vers:all/*", False),
        (("Paradigm 522K",), "MiniMed Paradigm 522K/722K pumps", "vers:all/*", True),
        (("MMT-523",), "MMT-523(K) / MMT-723(K) Paradigm", "vers:all/*", True),
        (("MMT-523K",), "MMT-523(K) / MMT-723(K) Paradigm", "vers:all/*", True),
        (("Paradigm Veo 754",), "MiniMed Paradigm Veo 554CM and 754CM models only", "<= 2.7A", False),
        (("Paradigm Veo 754CM",), "MiniMed Paradigm Veo 554CM and 754CM models only", "<= 2.7A", True),
        # ranges
        (("IntelliVue MX450",), "IntelliVue patient monitor MX400-MX850", "<=N", True),
        (("IntelliVue MX40",), "IntelliVue patient monitor MX400-MX850", "<=N", False),
        (("IntelliVue MX450",), "IntelliVue Patient Monitors MX (MX400-550)", "Rev J-M", True),
        (("IntelliVue MP50",), "IntelliVue MP monitors MP20-MP90 (M8001A/2A/3A) WLAN", "Version A", True),
        (("IntelliVue MP5",), "IntelliVue patient monitor MX400-MX850", "<=N", False),
        # series
        (("Paradigm 512",), "MiniMed Paradigm x12 pumps", "vers:all/*", True),
        (("Paradigm 522",), "MiniMed Paradigm x12 pumps", "vers:all/*", False),
        (("Innova IGS 530",), "Innova IGS 5x0", "vers:all/*", True),
        (("Innova IGS 630",), "Innova IGS 5x0", "vers:all/*", False),
        # case, punctuation and spacing
        (("MiniMed 508",), "Minimed508 pump", "vers:all/*", True),
        (("Minimed508",), "MiniMed 508 pump", "vers:all/*", True),
        (("MINIMED-508",), "MiniMed 508 pump", "vers:all/*", True),
        (("MMT-508",), "MiniMed 508 pump", "vers:all/*", True),
        (("IntelliBridge EC80",), "IntelliBridge EC 80 Hub", "<= C.00.04", True),
        (("intellivue mx 40",), "IntelliVue MX40 Patient Worn Monitor", "< B.06.18", True),  # typed in lower case
        (("mmt-508",), "MMT-500 Remote Controller", "MMT-508 MiniMed pump", True),
        (("intellivue x 40",), "IntelliVue MX40 Patient Worn Monitor", "< B.06.18", False),
        (("CareLink 2090 Programmer",), "2090 CareLink Programmer", "vers:all/*", True),  # any order
        (("CareLink 2090 Programmer",), "CareLink 9790 Programmer", "vers:all/*", False),
        # marketing names and model numbers: the advisory relates them
        (("MMT-1780",), "MiniMed 670G", "MMT-1740 | MMT-1780 | MMT-1781", True),
        (("MiniMed 670G",), "MiniMed 670G", "MMT-1740 | MMT-1780 | MMT-1781", True),
        (("MiniMed 780G", "MMT-1885"), "MiniMed 670G", "MMT-1740 | MMT-1780 | MMT-1781", False),
        (("Aestiva 7900",), "GE Aestiva", "7100 | 7900 MRI", True),
        # a code prefix on one side only needs a shared word: "B650" is not the Carestation 650
        (("CARESCAPE B650",), "B650", "2.X", True),
        (("CARESCAPE B650",), "Carestation 650", "vers:all/*", False),
        (("CARESCAPE B650",), "Innova IGS 6x0", "vers:all/*", False),
        (("Carestation 650",), "GE Carestation", "620 | 650 | 650c", True),
        (("B650",), "GE Carestation", "620 | 650 | 650c", False),  # a one-letter code is part of the model
        (("Optima CT520",), "Optima 520", "vers:all/*", False),
        # a family product whose own name carries a model number is another model
        (("Discovery IQ",), "Discovery XR656", "vers:all/*", False),
        (("Discovery IQ",), "Discovery", "vers:all/*", True),
        # what a product explicitly leaves out is not matched
        (("Venue 50",), "Venue, not including Venue 40 R1-3 and Venue 50 R4-5", "vers:all/*", False),
        (("Venue 90",), "Venue, not including Venue 40 R1-3 and Venue 50 R4-5", "vers:all/*", True),
        (("ImageVault",), "Voluson, not including ImageVault", "vers:all/*", False),
        (("Vivid E95",), "Vivid products, not including EchoPAC", "vers:all/*", True),
        # a capital letter after a name designates a model
        (("Vivid E95",), "Vivid I", "BT06", False),
        (("Vivid I",), "Vivid I", "BT06", True),
        (("Vivid I",), "Vivid 7", ">=BT02 | <= BT06", False),
        # names that differ only in the sort of device are two products
        (("CareLink Monitor",), "2090 CareLink Programmer", "vers:all/*", False),
        (("CareLink Monitor",), "CareLink Monitor", "2490C", True),
        (("Connex Spot Monitor",), "Welch Allyn Connex Spot Monitor (CSM)", "< 1.52", True),
        (("Aestiva 7300",), "GE Aestiva", "7100 | 7900 MRI", False),
        # family-level products concern a more specific watched model unless they name another model
        (("Alaris PC Unit 8015",), "Alaris PC Unit", "9.13 | 9.19", True),
        (("Alaris PC Unit 8015",), "Alaris 8000 PC unit", "vers:all/*", False),
        (("Alaris PC Unit 8015",), "Alaris PC Unit Model 8015", "<= 9.33.1", True),
        (("Aisys CS2",), "Aisys", "vers:all/*", True),
        (("Aisys CS2",), "GE Aisys", "CS2  Avance | Amingo | Avance CS2", True),
        (("Aisys CS2",), "GE Aisys", "CS1 | Avance CS1", False),
        (("MyCareLink Smart 25000",), "MyCareLink Monitor", "24950 | 24952", False),
        (("MyCareLink Smart 25000",), "Smart Model 25000 Patient Reader", "vers:all/*", True),
        # another product of the same family is not a match
        (("Alaris 8000",), "Alaris CC", "<= 2.3.6", False),
        (("Alaris 8000",), "Alaris Gateway Workstation", "1.1.6", False),
        (("Alaris 8000",), "BD Alaris Systems Manager", "<=12.3", False),
        (("Pyxis MedStation ES",), "BD Pyxis MedStation ES", "vers:all/*", True),
        (("Pyxis MedStation ES",), "BD Pyxis MedStation ES Server", "vers:all/*", True),
        (("Pyxis MedStation ES",), "BD Pyxis MedStation 4000", "vers:all/*", False),
        (("Pyxis MedStation ES",), "BD Pyxis ES Anesthesia Station", "vers:all/*", False),
        (("Tasy EMR",), "Tasy EMR HTML5", "<= 3.06.1803", True),
        (("Tasy EMR",), "Tasy WebPortal", "<= 3.02.1757", False),
        (("CoaguChek XS Plus",), "Point of Care handheld medical devices", "CoaguChek XS Plus", True),
        (("CoaguChek XS Plus",), "Point of Care handheld medical devices", "CoaguChek XS Pro", False),
        # generic words alone never match
        (("Infusion Pump",), "Infusion Pump", "vers:all/*", False),
        (("Infusion Pump",), "Sigma Spectrum Infusion Pump", "vers:all/*", False),
        (("Patient Monitor",), "IntelliVue Patient Monitor", "vers:all/*", False),
        (("Insulin Pump System Software",), "MiniMed 508 pump", "vers:all/*", False),
    ],
)
def test_model(models: tuple[str, ...], product: str, version: str, want: bool) -> None:
    advisory = csaf(prod("Acme Medical", product, version))
    assert (one(advisory, dev("Acme Medical", *models)) is not None) is want


def test_family_product_with_a_model_number_when_the_watched_model_has_none() -> None:
    advisory = csaf(prod("Baxter", "Baxter Spectrum", "v8.x model 35700BAX2"))
    assert one(advisory, dev("Baxter", "Sigma Spectrum")) is not None  # no number of its own to conflict
    assert one(advisory, dev("Baxter", "Sigma Spectrum 35700BAX")) is None


def test_manufacturer_name_inside_a_model_is_not_a_model_word() -> None:
    # "GE" and "BD" in product names say who made it; "MiniMed" is Medtronic's diabetes business
    assert one(csaf(prod("GE Healthcare", "GE Aisys")), dev("GE", "Aisys CS2")) is not None
    assert one(csaf(prod("Medtronic", "MiniMed 670G")), dev("Medtronic", "MiniMed 780G")) is None


# --- versions and `affected` -----------------------------------------------------------------

PARADIGM = (
    prod("Medtronic", "MiniMed 508 pump"),
    prod("Medtronic", "MiniMed Paradigm 522/722 pumps"),
    prod("Medtronic", "MiniMed Paradigm 523/723 pumps", "<= 2.4A"),
    prod("Medtronic", "MiniMed Paradigm 523K/723K pumps", "<= 2.4A"),
    prod("Medtronic", "MiniMed Paradigm Veo 554/754 pumps", "<= 2.6A"),
    prod("Medtronic", "MiniMed Paradigm Veo 554CM and 754CM models only", "<= 2.7A"),
)


@pytest.mark.parametrize(
    ("models", "firmware", "want"),
    [
        (("MiniMed 508",), None, True),  # vers:all/*
        (("MiniMed 508",), "1.0", True),
        (("Paradigm Revel 523", "MMT-523"), "2.5A", False),  # outside "<= 2.4A"
        (("Paradigm Revel 523", "MMT-523"), "2.4A", True),
        (("Paradigm Revel 523", "MMT-523"), None, None),  # limited range, no firmware
        (("Paradigm Veo 754",), "2.7A", False),  # only the 754CM variant goes up to 2.7A
        (("Paradigm Veo 754",), "2.6A", True),
        (("Paradigm Veo 754CM",), "2.7A", True),
        (("Paradigm Veo 754CM",), "2.8A", False),
    ],
)
def test_affected(models: tuple[str, ...], firmware: str | None, want: bool | None) -> None:
    match = one(csaf(*PARADIGM), dev("Medtronic", *models, firmware=firmware))
    assert match is not None
    assert match.affected is want


@pytest.mark.parametrize(
    ("products", "firmware", "want"),
    [
        # a product listed as fixed never makes the device affected
        ((prod("Acme", "Widget 300", "2.0", "fixed"),), "2.0", False),
        ((prod("Acme", "Widget 300", "2.0", "fixed"),), None, None),
        (
            (prod("Acme", "Widget 300", "<= 1.9", "known_affected"), prod("Acme", "Widget 300", "2.0", "fixed")),
            "2.0",
            False,
        ),
        (
            (prod("Acme", "Widget 300", "<= 1.9", "known_affected"), prod("Acme", "Widget 300", "2.0", "fixed")),
            "1.5",
            True,
        ),
        ((prod("Acme", "Widget 300", ">= 3.0", "known_not_affected"),), "3.1", False),
        ((prod("Acme", "Widget 300", "<= 1.9", "under_investigation"),), "1.5", None),
        # affected when any matched product says so; not affected only when every one says not
        ((prod("Acme", "Widget 300", "<= 1.0"), prod("Acme", "Widget 300 Plus", "<= 3.0")), "2.0", True),
        ((prod("Acme", "Widget 300", "<= 1.0"), prod("Acme", "Widget 300", "<= 1.5")), "2.0", False),
        (
            (prod("Acme", "Widget 300", "<= 1.0"), prod("Acme", "Widget 300", "distributed before May 2018")),
            "2.0",
            None,
        ),
        # a version field listing models limits no version of the model it names
        ((prod("Acme", "Remote Controller 503", "Widget 300 / Widget 700"),), "9.9", True),
        ((prod("Acme", "Widget", "9.x model 300"),), "9.1", True),
        ((prod("Acme", "Widget", "9.x model 300"),), "8.1", False),
        ((prod("Acme", "Widget Bed", "300 and 400"),), "1.0", True),
        ((prod("Acme", "Widget 300", "<= GEH-1.1 (integrated into Widget 300)"),), "1.0", None),
    ],
)
def test_affected_statuses(products: tuple[Product, ...], firmware: str | None, want: bool | None) -> None:
    match = one(csaf(*products), dev("Acme", "Widget 300", firmware=firmware))
    assert match is not None  # a match that is not affected is still reported
    assert match.affected is want


def test_why_names_alias_product_model_and_version_words() -> None:
    match = one(csaf(*PARADIGM), dev("Medtronic", "Paradigm Revel 523", "MMT-523", firmware="2.5A"))
    assert match is not None
    assert match.why == (
        'Medtronic (vendor "Medtronic") product "MiniMed Paradigm 523/723 pumps" names model 523; '
        'firmware 2.5A is outside "<= 2.4A" (not affected)'
    )
    assert match.matched_products == (PARADIGM[2],)


@pytest.mark.parametrize(
    ("device", "advisory", "words"),
    [
        (
            dev("Abbott", "Merlin@home EX1150"),
            csaf(prod("St. Jude Medical", "RF models EX1150", "< 8.2.2")),
            ['vendor "St. Jude Medical"', '"RF models EX1150"', "model EX1150", '"< 8.2.2"', "no firmware"],
        ),
        (
            dev("BD", "Alaris PC Unit 8015", firmware="9.19"),
            csaf(prod("BD", "Alaris PC Unit", "9.13 | 9.19")),
            ["product family", '"Alaris PC Unit 8015"', "9.19 is within", "(affected)"],
        ),
        (
            dev("Medtronic", "MiniMed 508"),
            csaf(prod("Medtronic", "MiniMed 508 pump")),
            ["model 508", 'all versions are affected ("vers:all/*")'],
        ),
        (
            dev("BD", "Alaris 8000"),
            item("BD Recalls Alaris System", "Affected: Alaris PC Unit Model 8000."),
            ['named as "BD"', "text names model 8000", "no version range"],
        ),
    ],
)
def test_why(device: WatchedDevice, advisory: Advisory, words: list[str]) -> None:
    match = one(advisory, device)
    assert match is not None
    for word in words:
        assert word in match.why
    assert "\n" not in match.why


# --- items without products: title and summary -----------------------------------------------

MINIMED_RECALL = item(
    "Medtronic Recalls MiniMed Insulin Pumps for Potential Cybersecurity Risks",
    "An unauthorized person could wirelessly connect to a nearby MiniMed insulin pump and change its settings. "
    "Affected: MiniMed 508 all versions; MiniMed Paradigm 511, 512/712, 515/715, 522/722, 522K/722K all versions; "
    "MiniMed Paradigm 523/723 and 523K/723K version 2.4A or lower; MiniMed Paradigm Veo 554CM/754CM version 2.7A "
    "or lower; MiniMed Paradigm Veo 554/754 version 2.6A or lower. Class I.",
)
REMOTE_RECALL = item(
    "Medtronic Recalls Remote Controllers Used with Paradigm and 508 MiniMed Insulin Pumps for Potential "
    "Cybersecurity Risks",
    "Update: Medtronic expanded this recall of all MiniMed remote controllers (models MMT-500 and MMT-503) used "
    "with the MiniMed 508 insulin pump or the MiniMed Paradigm family of insulin pumps. Class I. Initiated "
    "August 7, 2018. 31,310 devices in the U.S.",
)
RETAINER_RECALL = item(
    "Medtronic Recalls MiniMed Insulin Pumps for Incorrect Insulin Dosing",
    "Update: Medtronic will replace any MiniMed 600 series insulin pump (Model 630G MMT-1715, Model 670G "
    "MMT-1780) that has a clear retainer ring with one that has the black retainer ring. Class I.",
)
KEYPAD_RECALL = item(
    "BD Recalls Alaris PC Unit 8015 and Front Case with Keypad Replacement Kits Due to Unresponsive or Stuck Keys",
    "Keys on the BD Alaris PC Unit model 8015 keypad may become unresponsive or stuck after fluid ingress.",
)
ALARIS_HARDWARE = item(
    "BD Alaris System Infusion Pump Hardware Recall: Damaged Connectors",
    "Affected: Alaris PC Unit Model 8000 and Model 8015, Pump Module 8100, Syringe Module 8110. Class I.",
)
FOAM_RECALL = item(
    "Philips Respironics Recalls Certain Continuous and Non-Continuous Ventilators, Including CPAP and BiPAP",
    "Philips Respironics recalls certain ventilators, CPAP and BiPAP machines, including DreamStation and "
    "SystemOne devices, because the foam may break down. Class I. Initiated June 14, 2021.",
)
CISA_RSS = item(
    "St. Jude Merlin@home Transmitter Vulnerability (Update A)",
    "ICS Medical Advisory ICSMA-17-009-01\n1. EXECUTIVE SUMMARY\nCVSS v3 8.9\nVendor: St. Jude Medical\n"
    "Equipment: Merlin@home Transmitter\n2. RISK EVALUATION\n3.1 AFFECTED PRODUCTS\nThe following Merlin@home "
    "transmitters are affected: Merlin@home | versions prior to Version 8.2.2: RF models: EX1150 | Inductive "
    "models: EX1100.\n3.2 VULNERABILITY OVERVIEW\nCVE-2017-5149 CWE-300",
    manufacturer="St. Jude Medical",
)
CISA_RSS_PRODUCT_LINE = item(
    "Acme Widget Monitor",
    "Vendor: Acme Medical\nEquipment: Widget Monitor\n3.1 AFFECTED PRODUCTS\nWidget Monitor W300: <=V2.01, "
    "Widget Monitor W500: vers:all/*\n3.2 VULNERABILITY OVERVIEW\nCVE-2026-1 CWE-798",
    manufacturer="Acme Medical",
)
OPENFDA = item(
    "MiniMed 780G insulin pump recall",
    products=(
        prod(
            "Medtronic MiniMed, Inc.",
            "PUMP MMT-1885 MiniMed 780G Insulin Pump, used with ... Guardian 4 Sensor; PUMP MMT-1880 MiniMed 770G "
            "Insulin Pump; UDI-DI 00763000511706, 00763000511713; all lots manufactured before the software update",
            "",
        ),
    ),
)

SHORT_OPENFDA = item("t:slim X2 recall", products=(prod("Tandem Diabetes Care Inc", "t:slim X2 insulin pump", ""),))


@pytest.mark.parametrize(
    ("advisory", "device", "want", "affected"),
    [
        (MINIMED_RECALL, dev("Medtronic", "MiniMed 508", "MMT-508"), True, True),
        (MINIMED_RECALL, dev("Medtronic", "Paradigm Revel 523", "MMT-523", firmware="2.5A"), True, False),
        (MINIMED_RECALL, dev("Medtronic", "Paradigm Revel 523", "MMT-523", firmware="2.3A"), True, True),
        (MINIMED_RECALL, dev("Medtronic", "Paradigm Veo 754", firmware="2.7A"), True, False),
        (MINIMED_RECALL, dev("Medtronic", "MiniMed 780G", "MMT-1885"), False, None),
        (REMOTE_RECALL, dev("Medtronic", "MiniMed 508", "MMT-508"), True, None),
        (REMOTE_RECALL, dev("Medtronic", "Paradigm Revel 523", "MMT-523"), True, None),  # "the Paradigm family"
        (REMOTE_RECALL, dev("Medtronic", "MiniMed 780G", "MMT-1885"), False, None),
        (RETAINER_RECALL, dev("Medtronic", "MiniMed 670G"), True, None),
        (RETAINER_RECALL, dev("Medtronic", "MMT-1780"), True, None),
        (RETAINER_RECALL, dev("Medtronic", "MiniMed 780G", "MMT-1885"), False, None),
        (RETAINER_RECALL, dev("Medtronic", "MiniMed 508", "MMT-508"), False, None),
        (KEYPAD_RECALL, dev("BD", "Alaris PC Unit 8015"), True, None),
        (KEYPAD_RECALL, dev("BD", "Alaris 8000"), False, None),  # "Alaris PC Unit 8015" is another model
        (ALARIS_HARDWARE, dev("BD", "Alaris 8000"), True, None),
        (ALARIS_HARDWARE, dev("Becton, Dickinson and Company", "Alaris PC Unit 8015"), True, None),
        (ALARIS_HARDWARE, dev("BD", "Alaris 8100"), True, None),
        (ALARIS_HARDWARE, dev("BD", "Alaris 8200"), False, None),
        (FOAM_RECALL, dev("Philips", "DreamStation"), True, None),
        (FOAM_RECALL, dev("Philips", "IntelliVue MX40"), False, None),  # "Philips" in the title alone
        (FOAM_RECALL, dev("ResMed", "DreamStation"), False, None),  # the model, but another manufacturer
        (CISA_RSS, dev("Abbott", "Merlin@home EX1150", firmware="8.2.1"), True, True),
        (CISA_RSS, dev("Abbott", "Merlin@home EX1150", firmware="8.2.2"), True, False),
        (CISA_RSS, dev("Abbott", "Merlin PCS Programmer 3650"), False, None),
        (CISA_RSS_PRODUCT_LINE, dev("Acme", "Widget Monitor W300", firmware="2.0"), True, True),
        (CISA_RSS_PRODUCT_LINE, dev("Acme", "Widget Monitor W300", firmware="2.02"), True, False),
        (CISA_RSS_PRODUCT_LINE, dev("Acme", "Widget Monitor W500", firmware="9"), True, True),
        (OPENFDA, dev("Medtronic", "MiniMed 780G", "MMT-1885"), True, None),
        (OPENFDA, dev("Medtronic", "MMT-1880"), True, None),
        (OPENFDA, dev("Medtronic", "MiniMed 670G", "MMT-1780"), False, None),
        (SHORT_OPENFDA, dev("Tandem", "t:slim X2"), True, None),  # no version stated: undecided
        (SHORT_OPENFDA, dev("Tandem", "t:slim G4"), False, None),
    ],
)
def test_text(advisory: Advisory, device: WatchedDevice, want: bool, affected: bool | None) -> None:
    match = one(advisory, device)
    assert (match is not None) is want
    if match is not None:
        assert match.affected is affected


@pytest.mark.parametrize(
    ("watched", "text", "want"),
    [
        ("Baxter", "Welch Allyn recalls Connex Spot Monitor units", True),  # a child brand counts
        ("Welch Allyn", "Welch Allyn recalls Connex Spot Monitor units", True),
        ("Welch Allyn", "Baxter recalls Connex Spot Monitor units", False),  # the parent alone does not
        ("Medtronic", "Acme recalls insulin pumps sold for the Paradigm 523", False),
        ("Medtronic", "Medtronic recalls insulin pumps", False),  # generic words alone
        ("Philips", "Philips issues a security update", False),
    ],
)
def test_text_manufacturer(watched: str, text: str, want: bool) -> None:
    models = ("Connex Spot Monitor",) if "Connex" in text else ("Paradigm Revel 523", "Insulin Pump", "MX40")
    assert (one(item(text), dev(watched, *models)) is not None) is want


@pytest.mark.parametrize(
    ("advisory", "device", "affected"),
    [
        # generic words between the watched words do not split a mention
        (
            item("Dario Health USB-C Blood Glucose Monitoring System Starter Kit Android Application", "Vendor: Dario"),
            dev("Dario Health", "USB-C Blood Glucose Monitoring System Starter Kit"),
            None,
        ),
        # a vendor field with corporate words in the middle
        (
            item(
                "Mira Hormone Monitor",
                "AFFECTED PRODUCTS\nMira Monitor Firmware 1.7.1.47",
                manufacturer="Quanovate Tech Inc. (operating as Mira / Mira Care)",
            ),
            dev("Quanovate Tech (operating as Mira / Mira Care)", "Mira Hormone Monitor"),
            None,
        ),
        # a product named after its maker
        (
            item(
                "Orthanc Server", "AFFECTED PRODUCTS\nOrthanc server: Versions prior to 1.5.8.", manufacturer="Orthanc"
            ),
            dev("Orthanc", "Orthanc Server", firmware="1.5.7"),
            True,
        ),
    ],
)
def test_text_odd_names(advisory: Advisory, device: WatchedDevice, affected: bool | None) -> None:
    match = one(advisory, device)
    assert match is not None
    assert match.affected is affected


def test_text_name_words_must_be_close_together() -> None:
    far = item("Acme Widget recall", "The Connex unit is affected. Nurses should spot check the display.")
    near = item("Acme Widget recall", "The Connex Spot Monitor is affected.")
    assert one(far, dev("Acme", "Connex Spot Monitor")) is None
    assert one(near, dev("Acme", "Connex Spot Monitor")) is not None


def test_title_names_the_model_when_no_product_does() -> None:
    advisory = csaf(
        prod("B. Braun Medical", "Battery Pack SP with Wi-Fi", "<= L81"),
        title="B. Braun Infusomat Space Large Volume Pump",
    )
    match = one(advisory, dev("B. Braun", "Infusomat Space"))
    assert match is not None and match.affected is None
    assert one(advisory, dev("B. Braun", "Perfusor Space")) is None
    # one family word in a title is too little: "MyCareLink Smart" is not the MyCareLink Monitor
    smart = csaf(prod("Medtronic", "Smart Model 25000 Patient Reader"), title="Medtronic MyCareLink Smart")
    assert one(smart, dev("Medtronic", "MyCareLink Monitor")) is None
    assert one(smart, dev("Medtronic", "MyCareLink Smart 25000")) is not None


# --- advisories from the corpus --------------------------------------------------------------


def _read(name: str) -> list[Advisory]:
    read = read_advisory_file(FIXTURES / name)
    assert read.error is None
    return list(read.advisories)


def test_worked_example_icsma_19_178_01() -> None:
    (advisory,) = _read("icsma-19-178-01.json")
    devices = [
        WatchedDevice("minimed-508", "Medtronic", ("MiniMed 508", "MMT-508")),
        WatchedDevice("paradigm-523", "Medtronic", ("Paradigm Revel 523", "MMT-523"), "2.5A"),
        WatchedDevice("veo-754", "Medtronic", ("Paradigm Veo 754",), "2.6A"),
        WatchedDevice("minimed-780g", "Medtronic", ("MiniMed 780G", "MMT-1885")),
        WatchedDevice("alaris-8000", "BD", ("Alaris 8000",)),
    ]
    got = {m.device.name: m.affected for m in match_advisory(advisory, devices, ALIASES)}
    assert got == {"minimed-508": True, "paradigm-523": False, "veo-754": True}


def test_remote_controller_advisory_names_pumps_in_its_version_field() -> None:
    (advisory,) = _read("icsma-18-219-02.json")
    devices = [
        WatchedDevice("minimed-508", "Medtronic", ("MiniMed 508", "MMT-508")),
        WatchedDevice("paradigm-523", "Medtronic", ("Paradigm Revel 523", "MMT-523"), "2.5A"),
        WatchedDevice("paradigm-512", "Medtronic", ("Paradigm 512",)),
        WatchedDevice("minimed-780g", "Medtronic", ("MiniMed 780G", "MMT-1885")),
    ]
    got = {m.device.name: m.affected for m in match_advisory(advisory, devices, ALIASES)}
    assert got == {"minimed-508": True, "paradigm-523": True, "paradigm-512": True}


def test_fda_recall_feed() -> None:
    advisories = _read("fda-medical-device-recalls.xml")
    devices = [
        WatchedDevice("minimed-508", "Medtronic", ("MiniMed 508", "MMT-508")),
        WatchedDevice("paradigm-523", "Medtronic", ("Paradigm Revel 523", "MMT-523"), "2.5A"),
        WatchedDevice("alaris-8000", "BD", ("Alaris 8000",)),
        WatchedDevice("minimed-780g", "Medtronic", ("MiniMed 780G", "MMT-1885")),
        WatchedDevice("intellivue-mx40", "Philips", ("IntelliVue MX40",)),
    ]
    titles = {(m.device.name, m.advisory.title) for m in match_all(advisories, devices, ALIASES)}
    assert {name for name, _ in titles} == {"minimed-508", "paradigm-523", "alaris-8000"}
    assert sorted(t for name, t in titles if name == "alaris-8000") == [
        "BD Alaris System Infusion Pump Hardware Recall: Damaged Connectors, Broken Platen Elements, Improperly "
        "Secured PC Unit Battery"
    ]
    for name in ("minimed-508", "paradigm-523"):
        mine = sorted(t for n, t in titles if n == name)
        assert len(mine) == 2 and all(t.startswith("Medtronic Recalls") for t in mine)
        assert not any("Incorrect Insulin Dosing" in t for t in mine)


@pytest.mark.parametrize("name", ["icsa-23-075-07.json", "icsa-23-012-11.json"])
def test_industrial_advisories_do_not_match_medical_devices(name: str) -> None:
    advisories = _read(name)
    devices = [
        WatchedDevice("philips", "Philips", ("IntelliVue MX40",)),
        WatchedDevice("rockwell-philips", "Philips", ("Modbus TCP Server",)),
        WatchedDevice("healthineers", "Siemens Healthineers", ("Symbia Intevo 16", "ACUSON X300")),
        WatchedDevice("medtronic", "Medtronic", ("MiniMed 508",)),
    ]
    assert match_all(advisories, devices, ALIASES) == []


# --- manufacturers_of, model_tokens, load_aliases --------------------------------------------


@pytest.mark.parametrize(
    ("advisory", "want"),
    [
        (csaf(prod("Becton, Dickinson and Company (BD)", "Alaris 8000 PC unit")), {"Becton, Dickinson and Company"}),
        (csaf(prod("CareFusion", "Pyxis")), {"CareFusion", "Becton, Dickinson and Company"}),
        (csaf(prod("Hillrom", "Welch Allyn Connex Spot Monitor")), {"Hillrom", "Baxter"}),
        (csaf(prod("Phillips", "IntelliSpace")), {"Philips"}),
        (csaf(prod("General Electric (GE)", "B450")), {"GE HealthCare"}),
        (csaf(prod("Silex Technology and GE Healthcare", "SX-500")), {"GE HealthCare"}),
        (csaf(prod("Acme Widgets Inc.", "W300")), {"Acme Widgets"}),
        (KEYPAD_RECALL, {"Becton, Dickinson and Company"}),
        (MINIMED_RECALL, {"Medtronic", "MiniMed"}),
        (item("Recall of something", "no maker named"), set()),
    ],
)
def test_manufacturers_of(advisory: Advisory, want: set[str]) -> None:
    assert manufacturers_of(advisory, ALIASES) == want


@pytest.mark.parametrize(
    ("text", "present", "absent"),
    [
        ("MMT-522 / MMT-722", {"MMT522", "MMT722", "522", "722"}, set()),
        ("MiniMed Paradigm 522/722 pumps", {"522", "722"}, {"MMT522"}),
        ("Paradigm 7220", {"7220"}, {"722"}),
        ("MiniMed Paradigm Veo 554CM and 754CM", {"554CM", "754CM"}, {"754", "554"}),
        ("MMT-523(K) / MMT-723(K)", {"MMT523", "MMT523K", "MMT723K"}, set()),
        ("IntelliVue patient monitor MX400-MX850", {"MX400-850"}, {"MX400", "MX850"}),
        ("Minimed508 and MINIMED-508", {"508"}, set()),
        ("CVE-2019-10964 version 2.4A, 31,310 devices, June 27, 2019", set(), {"2019", "10964", "310", "27", "24A"}),
        ("Alaris 8000 PC unit, Paradigm 5", {"8000"}, {"5"}),
    ],
)
def test_model_tokens(text: str, present: set[str], absent: set[str]) -> None:
    tokens = model_tokens(text)
    assert present <= tokens
    assert not absent & tokens


def test_load_aliases_extends_listed_and_adds_new_manufacturers() -> None:
    aliases = load_aliases({"BD": ["BD Rowa Tech"], "Acme Medical": ["Acme Med", "AMD Devices"]})
    assert aliases.canonical("BD Rowa Tech") == "Becton, Dickinson and Company"
    assert aliases.canonical("AMD Devices") == "Acme Medical"
    assert aliases.canonical("acme med") == "Acme Medical"
    assert "BD Rowa Tech" in aliases.forms("Becton, Dickinson and Company")
    advisory = csaf(prod("AMD Devices Ltd", "Widget 300"))
    assert one(advisory, dev("Acme Medical", "Widget 300"), aliases) is not None
    assert one(advisory, dev("Acme Medical", "Widget 300")) is None  # without the user's alias


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("BD", "Becton, Dickinson and Company"),
        ("Becton Dickinson", "Becton, Dickinson and Company"),
        ("Becton, Dickinson and Company (BD)", "Becton, Dickinson and Company"),
        ("GE Healthcare", "GE HealthCare"),
        ("General Electric (GE)", "GE HealthCare"),
        ("Phillips", "Philips"),
        ("St Jude Medical", "St. Jude Medical"),
        ("Abbott Diabetes Care Inc.", "Abbott"),
        ("Drager", "Dräger"),
        ("Draeger", "Dräger"),
        ("Hill-Rom", "Hillrom"),
        ("Nobody Industries", None),
    ],
)
def test_canonical(name: str, canonical: str | None) -> None:
    assert ALIASES.canonical(name) == canonical


def test_family_tree() -> None:
    assert {"Hillrom", "Welch Allyn", "Mortara Instrument", "Gambro"} <= ALIASES.descendants("Baxter")
    assert ALIASES.ancestors("Welch Allyn") == {"Hillrom", "Baxter"}
    assert "St. Jude Medical" in ALIASES.descendants("Abbott")
    assert "CareFusion" in ALIASES.descendants("Becton, Dickinson and Company")
    assert not ALIASES.descendants("Welch Allyn")


def test_every_parent_in_the_data_file_is_listed() -> None:
    for child, parent in ALIASES.parents.items():
        assert parent in ALIASES.names, f"{child}: parent {parent!r} is not a listed manufacturer"
