"""Vendor version ordering and advisory version expressions: table-driven, each form with its negatives."""

from __future__ import annotations

import pytest

from aggregator.versions import compare_versions, evaluate, is_all_versions, looks_like_version


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("2.4A", "2.6A", -1),  # Medtronic's alphanumeric software versions
        ("2.6A", "2.7A", -1),
        ("2.7A", "2.4A", 1),
        ("8.2.1", "8.2.2", -1),
        ("8.2.10", "8.2.9", 1),  # numeric, not lexical
        ("8.2", "8.2.0", 0),  # a missing zero component is equal
        ("8.2", "8.2.1", -1),
        ("2.4", "2.4A", -1),  # a letter suffix sorts after the bare number
        ("v1.0", "1.0", 0),  # "v" prefix ignored
        ("Version 9.33", "9.33", 0),
        ("v20D29", "v20D32", -1),  # Baxter battery module builds
        ("B.06.12", "B.06.18", -1),  # Philips revision-letter versions
        ("R8.0.3", "8.1", -1),  # a release letter on one side only is not a component
        ("012U000040", "012U000061", -1),
        ("1.10", "1.9", 1),
    ],
)
def test_compare_versions(a: str, b: str, want: int) -> None:
    assert compare_versions(a, b) == want
    assert compare_versions(b, a) == -want


@pytest.mark.parametrize(
    ("firmware", "expression", "want"),
    [
        # all versions: True whatever the firmware, even none
        ("2.5A", "vers:all/*", True),
        (None, "vers:all/*", True),
        (None, "*", True),
        ("1.0", "All versions", True),
        ("1.0", "* (end-of-life 2011)", True),
        ("5.0", "All versions prior to 4.2.3", False),  # "all versions" that then limits them
        ("4.0", "All versions prior to 4.2.3", True),
        (None, "", True),  # no limit stated
        # CISA operators
        ("2.5A", "<= 2.4A", False),
        ("2.4A", "<= 2.4A", True),
        ("2.3A", "<= 2.4A", True),
        ("8.2.1", "< 8.2.2", True),
        ("8.2.2", "< 8.2.2", False),
        ("2.2.4", "<= 2.2.3", False),
        ("2.2.3", "<=2.2.3", True),
        ("B.06.12", "< B.06.18", True),
        ("B.06.18", "< B.06.18", False),
        ("K", "<= K", True),  # revision letters
        ("L", "<= K", False),
        # prose
        ("2.6A", "2.6A or lower", True),
        ("2.7A", "2.6A or lower", False),
        ("2.0", "Version 2.4A or lower", True),
        ("8.2.1", "prior to 8.2.2", True),
        ("8.2.2", "prior to 8.2.2", False),
        ("8.2.1", "versions prior to Version 8.2.2", True),
        ("9.33", "9.33 and prior", True),
        ("9.34", "9.33 and prior", False),
        ("2.3.5", "2.3.6 and  below", True),
        ("3.0.1", "Versions 3.0.24 and prior", True),
        ("4.0", "Versions 3.0.24 and prior", False),
        ("2025.1", "Version 2025.2 (Build 8154) and prior", True),
        ("3.0", "2.7.1 or later", True),
        ("2.7", "2.7.1 or later", False),
        # lists
        ("9.19", "9.13 | 9.19 | 9.33", True),
        ("9.20", "9.13 | 9.19 | 9.33", False),
        ("9.33.1", "9.13 | 9.19 | 9.33 | 12.1", True),  # a listed version stands for its line
        ("1.10", "1.1 | 1.2", False),  # ... component-wise: 1.10 is not on the 1.1 line
        ("1.5", "1.1, 1.5 and 1.6", True),
        ("1.0", "1.1, 1.5 and 1.6", False),
        ("5.1", "5.0|5.1", True),
        # ranges
        ("v20D30", "v20D29 to v20D32", True),
        ("20D33", "v20D29 to v20D32", False),
        ("1.0.5", ">= 1.0.0 | <= 1.1.1", True),
        ("1.2", ">= 1.0.0 | <= 1.1.1", False),
        ("22D25", ">= v20D29 | <= v20D32 | >= v22D24 | <= v22D28", True),
        ("21D1", ">= v20D29 | <= v20D32 | >= v22D24 | <= v22D28", False),
        ("K", "Rev J-M", True),
        ("A", "Rev J-M", False),
        # wildcards
        ("5.2.1", "Version 5.x.x", True),
        ("6.0", "Version 5.x.x", False),
        ("11.9", "<= 11.x", True),
        ("12.0", "<= 11.x", False),
        ("2.1", "2.X", True),
        ("6.2", "6.x (Wireless Battery Modules (16 | 16D38 | >= 20D29 | <= v20D32)", True),  # qualifier dropped
        ("8.1", "v8.x model 35700BAX2", True),
        ("9.1", "v8.x model 35700BAX2", False),
        # vers: URIs
        ("1.5", "vers:generic/>=1.0|<2.0", True),
        ("2.0", "vers:generic/>=1.0|<2.0", False),
        ("0.9", "vers:generic/>=1.0|<2.0", False),
        ("1.2", "vers:generic/!=1.2", False),
        ("1.3", "vers:generic/!=1.2", True),
        ("3.1", "vers:semver/<1.0|>=3.0", True),
        # no firmware and a limited range: undecided
        (None, "<= 2.4A", None),
        ("", "prior to 8.2.2", None),
        (None, "9.13 | 9.19", None),
        # unreadable or not comparable with a firmware string: undecided, never a guess
        ("1.0", "distributed  < april 1, 2018", None),
        ("1.0", "< august 28", None),
        ("1.0", "<8/30/2024", None),
        ("1.0", "<July_2026", None),
        ("1.0", "September 19, 2025 and prior", None),
        ("1.0", "MMT-523 / MMT-723 Paradigm Revel", None),
        ("1.0", "CoaguChek XS Plus", None),
        ("1.0", "<=11.2 on Windows 8.1 with IIS 7.5", None),
        ("1.0", "Version B, Firmware A.01.09, Part #: N/A (Replaced by Version C)", None),
        ("1.3.1", "1.3.1 Build 13", None),
        ("1", "1.3.1.2", None),  # the firmware is less precise than the listed version
    ],
)
def test_evaluate(firmware: str | None, expression: str, want: bool | None) -> None:
    assert evaluate(firmware, expression) is want


@pytest.mark.parametrize(
    ("expression", "want"),
    [
        ("vers:all/*", True),
        ("*", True),
        ("All versions", True),
        ("", True),
        ("<= 2.4A", False),
        ("9.13 | 9.19", False),
        ("allegro", False),
        ("All units manufactured before April 2018", False),
    ],
)
def test_is_all_versions(expression: str, want: bool) -> None:
    assert is_all_versions(expression) is want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("<= 2.4A", True),
        ("9.13 | 9.19 | 9.33", True),
        ("vers:all/*", True),
        ("prior to 8.2.2", True),
        ("MMT-523 / MMT-723 Paradigm Revel", False),
        ("CoaguChek XS Plus", False),
        ("CS2  Avance | Amingo | Avance CS2", False),
        ("distributed < april 1, 2018", False),
    ],
)
def test_looks_like_version(text: str, want: bool) -> None:
    assert looks_like_version(text) is want
