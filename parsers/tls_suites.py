"""TLS/DTLS registries as data: cipher suites, named groups, signature schemes, extensions, alerts.

Cipher suites are listed once as (code, IANA name); every property (key exchange, cipher,
mode, MAC, key sizes, weakness) is derived from the IANA name, so the table cannot disagree
with itself. Unknown codes stay representable (`suite(code)` returns None, `suite_name` gives
`unknown_0x....`), like aiocoap's open enums.
"""
from __future__ import annotations

from dataclasses import dataclass

# (code, IANA name). PSK and ECDHE suites complete; RSA/DHE/anon the common ones.
_SUITES: tuple[tuple[int, str], ...] = (
    (0x0000, "TLS_NULL_WITH_NULL_NULL"),
    (0x0001, "TLS_RSA_WITH_NULL_MD5"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    (0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"),
    (0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0009, "TLS_RSA_WITH_DES_CBC_SHA"),
    (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA"),
    (0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5"),
    (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"),
    (0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA"),
    (0x001A, "TLS_DH_anon_WITH_DES_CBC_SHA"),
    (0x001B, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"),
    (0x002C, "TLS_PSK_WITH_NULL_SHA"),
    (0x002D, "TLS_DHE_PSK_WITH_NULL_SHA"),
    (0x002E, "TLS_RSA_PSK_WITH_NULL_SHA"),
    (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0030, "TLS_DH_DSS_WITH_AES_128_CBC_SHA"),
    (0x0031, "TLS_DH_RSA_WITH_AES_128_CBC_SHA"),
    (0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"),
    (0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0x0036, "TLS_DH_DSS_WITH_AES_256_CBC_SHA"),
    (0x0037, "TLS_DH_RSA_WITH_AES_256_CBC_SHA"),
    (0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"),
    (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    (0x003A, "TLS_DH_anon_WITH_AES_256_CBC_SHA"),
    (0x003B, "TLS_RSA_WITH_NULL_SHA256"),
    (0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    (0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    (0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"),
    (0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0x006A, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"),
    (0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    (0x006C, "TLS_DH_anon_WITH_AES_128_CBC_SHA256"),
    (0x006D, "TLS_DH_anon_WITH_AES_256_CBC_SHA256"),
    (0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x008A, "TLS_PSK_WITH_RC4_128_SHA"),
    (0x008B, "TLS_PSK_WITH_3DES_EDE_CBC_SHA"),
    (0x008C, "TLS_PSK_WITH_AES_128_CBC_SHA"),
    (0x008D, "TLS_PSK_WITH_AES_256_CBC_SHA"),
    (0x008E, "TLS_DHE_PSK_WITH_RC4_128_SHA"),
    (0x008F, "TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA"),
    (0x0090, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA"),
    (0x0091, "TLS_DHE_PSK_WITH_AES_256_CBC_SHA"),
    (0x0092, "TLS_RSA_PSK_WITH_RC4_128_SHA"),
    (0x0093, "TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA"),
    (0x0094, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA"),
    (0x0095, "TLS_RSA_PSK_WITH_AES_256_CBC_SHA"),
    (0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0x00A2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"),
    (0x00A3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"),
    (0x00A6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"),
    (0x00A7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384"),
    (0x00A8, "TLS_PSK_WITH_AES_128_GCM_SHA256"),
    (0x00A9, "TLS_PSK_WITH_AES_256_GCM_SHA384"),
    (0x00AA, "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256"),
    (0x00AB, "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384"),
    (0x00AC, "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256"),
    (0x00AD, "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384"),
    (0x00AE, "TLS_PSK_WITH_AES_128_CBC_SHA256"),
    (0x00AF, "TLS_PSK_WITH_AES_256_CBC_SHA384"),
    (0x00B0, "TLS_PSK_WITH_NULL_SHA256"),
    (0x00B1, "TLS_PSK_WITH_NULL_SHA384"),
    (0x00B2, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256"),
    (0x00B3, "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384"),
    (0x00B4, "TLS_DHE_PSK_WITH_NULL_SHA256"),
    (0x00B5, "TLS_DHE_PSK_WITH_NULL_SHA384"),
    (0x00B6, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256"),
    (0x00B7, "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384"),
    (0x00B8, "TLS_RSA_PSK_WITH_NULL_SHA256"),
    (0x00B9, "TLS_RSA_PSK_WITH_NULL_SHA384"),
    (0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
    (0x5600, "TLS_FALLBACK_SCSV"),
    (0xC001, "TLS_ECDH_ECDSA_WITH_NULL_SHA"),
    (0xC002, "TLS_ECDH_ECDSA_WITH_RC4_128_SHA"),
    (0xC003, "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xC004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xC005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"),
    (0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"),
    (0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xC00B, "TLS_ECDH_RSA_WITH_NULL_SHA"),
    (0xC00C, "TLS_ECDH_RSA_WITH_RC4_128_SHA"),
    (0xC00D, "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xC00E, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA"),
    (0xC00F, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA"),
    (0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA"),
    (0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    (0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0xC015, "TLS_ECDH_anon_WITH_NULL_SHA"),
    (0xC016, "TLS_ECDH_anon_WITH_RC4_128_SHA"),
    (0xC017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA"),
    (0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),
    (0xC019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"),
    (0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xC025, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xC026, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    (0xC029, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256"),
    (0xC02A, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384"),
    (0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xC02D, "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xC02E, "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xC031, "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256"),
    (0xC032, "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384"),
    (0xC033, "TLS_ECDHE_PSK_WITH_RC4_128_SHA"),
    (0xC034, "TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA"),
    (0xC035, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA"),
    (0xC036, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA"),
    (0xC037, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256"),
    (0xC038, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384"),
    (0xC039, "TLS_ECDHE_PSK_WITH_NULL_SHA"),
    (0xC03A, "TLS_ECDHE_PSK_WITH_NULL_SHA256"),
    (0xC03B, "TLS_ECDHE_PSK_WITH_NULL_SHA384"),
    (0xC048, "TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256"),
    (0xC049, "TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384"),
    (0xC04C, "TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256"),
    (0xC04D, "TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384"),
    (0xC05C, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"),
    (0xC05D, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384"),
    (0xC060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"),
    (0xC061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384"),
    (0xC064, "TLS_PSK_WITH_ARIA_128_CBC_SHA256"),
    (0xC065, "TLS_PSK_WITH_ARIA_256_CBC_SHA384"),
    (0xC066, "TLS_DHE_PSK_WITH_ARIA_128_CBC_SHA256"),
    (0xC067, "TLS_DHE_PSK_WITH_ARIA_256_CBC_SHA384"),
    (0xC068, "TLS_RSA_PSK_WITH_ARIA_128_CBC_SHA256"),
    (0xC069, "TLS_RSA_PSK_WITH_ARIA_256_CBC_SHA384"),
    (0xC06A, "TLS_PSK_WITH_ARIA_128_GCM_SHA256"),
    (0xC06B, "TLS_PSK_WITH_ARIA_256_GCM_SHA384"),
    (0xC06C, "TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256"),
    (0xC06D, "TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384"),
    (0xC06E, "TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256"),
    (0xC06F, "TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384"),
    (0xC070, "TLS_ECDHE_PSK_WITH_ARIA_128_CBC_SHA256"),
    (0xC071, "TLS_ECDHE_PSK_WITH_ARIA_256_CBC_SHA384"),
    (0xC072, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xC073, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xC076, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xC077, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xC086, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256"),
    (0xC087, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384"),
    (0xC08A, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"),
    (0xC08B, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384"),
    (0xC08E, "TLS_PSK_WITH_CAMELLIA_128_GCM_SHA256"),
    (0xC08F, "TLS_PSK_WITH_CAMELLIA_256_GCM_SHA384"),
    (0xC090, "TLS_DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256"),
    (0xC091, "TLS_DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384"),
    (0xC092, "TLS_RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256"),
    (0xC093, "TLS_RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384"),
    (0xC094, "TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xC095, "TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xC096, "TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xC097, "TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xC098, "TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xC099, "TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xC09A, "TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256"),
    (0xC09B, "TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384"),
    (0xC09C, "TLS_RSA_WITH_AES_128_CCM"),
    (0xC09D, "TLS_RSA_WITH_AES_256_CCM"),
    (0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM"),
    (0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM"),
    (0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8"),
    (0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8"),
    (0xC0A2, "TLS_DHE_RSA_WITH_AES_128_CCM_8"),
    (0xC0A3, "TLS_DHE_RSA_WITH_AES_256_CCM_8"),
    (0xC0A4, "TLS_PSK_WITH_AES_128_CCM"),
    (0xC0A5, "TLS_PSK_WITH_AES_256_CCM"),
    (0xC0A6, "TLS_DHE_PSK_WITH_AES_128_CCM"),
    (0xC0A7, "TLS_DHE_PSK_WITH_AES_256_CCM"),
    (0xC0A8, "TLS_PSK_WITH_AES_128_CCM_8"),
    (0xC0A9, "TLS_PSK_WITH_AES_256_CCM_8"),
    (0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8"),
    (0xC0AB, "TLS_PSK_DHE_WITH_AES_256_CCM_8"),
    (0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"),
    (0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"),
    (0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
    (0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"),
    (0xC0FF, "TLS_ECJPAKE_WITH_AES_128_CCM_8"),
    (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCCAB, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCCAC, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCCAD, "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256"),
    (0xCCAE, "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256"),
    (0xD001, "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256"),
    (0xD002, "TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384"),
    (0xD003, "TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256"),
    (0xD005, "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256"),
)

# Key exchange as written in the name -> (our kx label, authentication).
_KX = {
    "NULL": ("null", "null"), "RSA": ("rsa", "rsa"), "RSA_EXPORT": ("rsa", "rsa"),
    "DH_DSS": ("dh", "dss"), "DH_RSA": ("dh", "rsa"), "DHE_DSS": ("dhe", "dss"),
    "DHE_RSA": ("dhe", "rsa"), "DHE_DSS_EXPORT": ("dhe", "dss"), "DHE_RSA_EXPORT": ("dhe", "rsa"),
    "DH_anon": ("dh_anon", "anon"), "DH_anon_EXPORT": ("dh_anon", "anon"),
    "PSK": ("psk", "psk"), "DHE_PSK": ("dhe_psk", "psk"), "PSK_DHE": ("dhe_psk", "psk"),
    "RSA_PSK": ("rsa_psk", "psk"), "ECDHE_PSK": ("ecdhe_psk", "psk"),
    "ECDH_ECDSA": ("ecdh", "ecdsa"), "ECDHE_ECDSA": ("ecdhe", "ecdsa"),
    "ECDH_RSA": ("ecdh", "rsa"), "ECDHE_RSA": ("ecdhe", "rsa"), "ECDH_anon": ("ecdh_anon", "anon"),
    "ECJPAKE": ("ecjpake", "password"),
}
_HASHES = {"MD5": "md5", "SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}
_MAC_LEN = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48}
_WEAK_CIPHERS = {"NULL", "RC4", "DES", "3DES", "DES40", "RC2", "IDEA"}


@dataclass(frozen=True, slots=True)
class Suite:
    code: int
    name: str
    kx: str              # psk, ecdhe_psk, dhe_psk, rsa_psk, ecdhe, dhe, rsa, dh_anon, tls13, scsv ...
    auth: str            # psk, rsa, ecdsa, dss, anon, null, password
    cipher: str          # AES_128, AES_256, CHACHA20, 3DES_EDE, RC4_128, NULL, CAMELLIA_128 ...
    mode: str            # CCM, CCM_8, GCM, CBC, CHACHA20_POLY1305, NULL, RC4, 3DES, ...
    mac: str | None      # record MAC hash for non-AEAD suites; None for AEAD
    prf: str             # TLS 1.2 PRF hash: sha256 or sha384
    key_len: int
    fixed_iv_len: int    # implicit part of the AEAD nonce (RFC 5288/6655/7905)
    record_iv_len: int   # explicit per-record IV/nonce bytes
    tag_len: int         # AEAD tag bytes
    block_size: int
    export: bool

    @property
    def aead(self) -> bool:
        return self.mode in ("CCM", "CCM_8", "GCM", "CHACHA20_POLY1305")

    @property
    def mac_len(self) -> int:
        return _MAC_LEN.get(self.mac or "", 0)

    @property
    def is_sha1_mac(self) -> bool:
        return self.mac == "sha1"

    @property
    def is_weak(self) -> bool:
        if self.kx in ("scsv", "tls13"):
            return False
        return (self.export or self.auth in ("anon", "null") or self.mode == "NULL"
                or self.cipher.split("_")[0] in _WEAK_CIPHERS or self.mac == "md5")

    @property
    def is_psk(self) -> bool:
        return self.auth == "psk"


def _derive(code: int, name: str) -> Suite:
    body = name[4:]
    if "_WITH_" not in body:                      # TLS 1.3 suites and signalling values
        if name.endswith("_SCSV"):
            return Suite(code, name, "scsv", "null", "NULL", "NULL", None, "sha256", 0, 0, 0, 0, 0, False)
        kx_label, auth, rest = "tls13", "tls13", body
    else:
        kx_part, rest = body.split("_WITH_", 1)
        kx_label, auth = _KX.get(kx_part, (kx_part.lower(), "unknown"))
    export = "EXPORT" in name or "_40" in rest
    parts = rest.split("_")
    suffix_hash = _HASHES.get(parts[-1]) if len(parts) > 1 else None
    if suffix_hash:
        parts = parts[:-1]
    cipher_text = "_".join(parts)
    if cipher_text.endswith("CCM_8"):
        mode, cipher, tag = "CCM_8", cipher_text[:-6], 8
    elif cipher_text.endswith("CCM"):
        mode, cipher, tag = "CCM", cipher_text[:-4], 16
    elif cipher_text.endswith("GCM"):
        mode, cipher, tag = "GCM", cipher_text[:-4], 16
    elif cipher_text == "CHACHA20_POLY1305":
        mode, cipher, tag = "CHACHA20_POLY1305", "CHACHA20", 16
    elif cipher_text.endswith("CBC") or "_CBC_" in cipher_text:
        cipher = cipher_text.replace("_CBC", "")
        mode, tag = ("3DES" if cipher.startswith("3DES") else "CBC"), 0
    elif cipher_text.startswith("RC4"):
        mode, cipher, tag = "RC4", cipher_text, 0
    else:
        mode, cipher, tag = "NULL", "NULL", 0
    aead = mode in ("CCM", "CCM_8", "GCM", "CHACHA20_POLY1305")
    mac = None if aead else suffix_hash
    prf = "sha384" if suffix_hash == "sha384" else "sha256"
    bits = next((int(p) for p in cipher.split("_") if p.isdigit()), 0)
    key_len = {"CHACHA20": 32, "3DES_EDE": 24, "DES": 8, "DES40": 8, "IDEA": 16, "RC2": 16,
               "NULL": 0}.get(cipher, bits // 8)
    block = 8 if cipher.split("_")[0] in ("3DES", "DES", "DES40", "IDEA", "RC2") else 16
    if mode in ("CCM", "CCM_8", "GCM"):
        fixed_iv, record_iv = 4, 8
    elif mode == "CHACHA20_POLY1305":
        fixed_iv, record_iv = 12, 0
    elif mode in ("CBC", "3DES"):
        fixed_iv, record_iv = 0, block
    else:
        fixed_iv, record_iv, block = 0, 0, 0
    if kx_label == "tls13":                       # TLS 1.3: 12-byte IV, no explicit nonce
        fixed_iv, record_iv = 12, 0
    return Suite(code, name, kx_label, auth, cipher, mode, mac, prf, key_len, fixed_iv, record_iv,
                 tag, block if mode in ("CBC", "3DES") else 0, export)


SUITES: dict[int, Suite] = {code: _derive(code, name) for code, name in _SUITES}


def suite(code: int) -> Suite | None:
    return SUITES.get(code)


def suite_name(code: int) -> str:
    s = SUITES.get(code)
    if s is not None:
        return s.name
    if (code >> 8) == (code & 0xFF) and (code & 0x0F) == 0x0A:
        return f"GREASE_0x{code:04X}"
    return f"unknown_0x{code:04X}"


# IANA TLS Supported Groups.
NAMED_GROUPS: dict[int, str] = {
    1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2",
    6: "sect233k1", 7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1",
    11: "sect409k1", 12: "sect409r1", 13: "sect571k1", 14: "sect571r1", 15: "secp160k1",
    16: "secp160r1", 17: "secp160r2", 18: "secp192k1", 19: "secp192r1", 20: "secp224k1",
    21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1", 25: "secp521r1",
    26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 29: "x25519",
    30: "x448", 31: "brainpoolP256r1tls13", 32: "brainpoolP384r1tls13",
    33: "brainpoolP512r1tls13", 256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096",
    259: "ffdhe6144", 260: "ffdhe8192", 0x11EC: "X25519MLKEM768",
    0xFF01: "arbitrary_explicit_prime_curves", 0xFF02: "arbitrary_explicit_char2_curves",
}

# IANA TLS SignatureScheme (TLS 1.2 hash/signature pairs share the code space).
SIGNATURE_SCHEMES: dict[int, str] = {
    0x0201: "rsa_pkcs1_sha1", 0x0202: "dsa_sha1", 0x0203: "ecdsa_sha1",
    0x0301: "rsa_pkcs1_sha224", 0x0302: "dsa_sha224", 0x0303: "ecdsa_sha224",
    0x0401: "rsa_pkcs1_sha256", 0x0402: "dsa_sha256", 0x0403: "ecdsa_secp256r1_sha256",
    0x0501: "rsa_pkcs1_sha384", 0x0502: "dsa_sha384", 0x0503: "ecdsa_secp384r1_sha384",
    0x0601: "rsa_pkcs1_sha512", 0x0602: "dsa_sha512", 0x0603: "ecdsa_secp521r1_sha512",
    0x0101: "rsa_pkcs1_md5", 0x0103: "ecdsa_md5",
    0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519", 0x0808: "ed448", 0x0809: "rsa_pss_pss_sha256",
    0x080A: "rsa_pss_pss_sha384", 0x080B: "rsa_pss_pss_sha512",
    0x081A: "ecdsa_brainpoolP256r1tls13_sha256", 0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
    0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
}

# IANA TLS ExtensionType values (those seen with DTLS 1.2 and a few more).
EXTENSIONS: dict[int, str] = {
    0: "server_name", 1: "max_fragment_length", 4: "trusted_ca_keys", 5: "status_request",
    10: "supported_groups", 11: "ec_point_formats", 13: "signature_algorithms",
    14: "use_srtp", 15: "heartbeat", 16: "application_layer_protocol_negotiation",
    18: "signed_certificate_timestamp", 19: "client_certificate_type",
    20: "server_certificate_type", 21: "padding", 22: "encrypt_then_mac",
    23: "extended_master_secret", 28: "record_size_limit", 35: "session_ticket",
    41: "pre_shared_key", 42: "early_data", 43: "supported_versions", 44: "cookie",
    45: "psk_key_exchange_modes", 51: "key_share", 53: "connection_id_deprecated",
    54: "connection_id", 256: "ecjpake_kkpp", 254: "connection_id_draft_mbedtls",
    0xFF01: "renegotiation_info",
}

# TLS Alert descriptions.
ALERTS: dict[int | None, str] = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure",
    41: "no_certificate", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}

# Certificate types (RFC 7250 / IANA TLS Certificate Types).
CERTIFICATE_TYPES: dict[int, str] = {0: "x509", 1: "openpgp", 2: "rpk"}


def named_group(code: int) -> str:
    return NAMED_GROUPS.get(code, f"unknown_{code}")


def signature_scheme(code: int) -> str:
    return SIGNATURE_SCHEMES.get(code, f"unknown_0x{code:04x}")


def extension_name(code: int) -> str:
    return EXTENSIONS.get(code, f"unknown_{code}")


def alert_name(code: int | None) -> str:
    return ALERTS.get(code, f"unknown_{code}")
