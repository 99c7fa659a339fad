"""Fields every document carries: the Community ID flow hash against the published vectors.

Vectors: the Community ID specification's baseline tables (corelight/community-id-spec,
`baseline/README.md`, seeds 0 and 1), which Zeek, pycommunityid and others test against.
"""
import pytest

from monitor.ecs import _community_id, community_id

V6_A = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D"
V6_B = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D"


@pytest.mark.parametrize("src, dst, proto, seed, expected", [
    (("1.2.3.4", 1122), ("5.6.7.8", 3344), 17, 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    (("5.6.7.8", 3344), ("1.2.3.4", 1122), 17, 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    (("1.2.3.4", 1122), ("5.6.7.8", 3344), 17, 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (("5.6.7.8", 3344), ("1.2.3.4", 1122), 17, 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (("1.2.3.4", 1122), ("5.6.7.8", 3344), 6, 0, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    (("1.2.3.4", 1122), ("5.6.7.8", 3344), 132, 1, "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
    # IPv6 addresses: the one-way ICMPv6 rows hash (type, code) as the ports, unordered
    ((V6_A, 146), (V6_B, 0), 58, 0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10="),
    ((V6_A, 146), (V6_B, 0), 58, 1, "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="),
])
def test_community_id_matches_the_published_baseline(src, dst, proto, seed, expected):
    assert _community_id(src, dst, proto, seed) == expected
    assert community_id(src, dst, proto, seed) == expected


def test_community_id_is_the_same_for_any_spelling_of_an_address():
    compressed = ("fe80:1:203:405:607:809:a0b:c0d", 146)
    assert _community_id(compressed, (V6_B, 0), 58, 0) == "1:fYC8+pz24E+EhANP1EZhpX0Dw10="
    # a link-local address with a zone (what a live capture on an interface may give)
    scoped = ("fe80:1:203:405:607:809:a0b:c0d%eth0", 146)
    assert _community_id(scoped, (V6_B, 0), 58, 0) == "1:fYC8+pz24E+EhANP1EZhpX0Dw10="
    mapped = _community_id(("::ffff:1.2.3.4", 1122), ("::ffff:5.6.7.8", 3344), 17, 0)
    assert mapped.startswith("1:") and mapped != "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="   # 16-byte addresses
