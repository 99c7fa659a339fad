"""IANA "CoAP Content-Formats" registry, as an open table: unknown numbers are kept.

`lookup(number)` always returns a `ContentFormat`; one not in the table has `known=False` and
a name like `unknown-65000`, so a monitor can report what it saw instead of dropping it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContentFormat:
    number: int
    media_type: str
    known: bool = True

    def __str__(self) -> str:
        return self.media_type


TEXT_PLAIN = 0
COSE_ENCRYPT0 = 16
COSE_MAC0 = 17
COSE_SIGN1 = 18
LINK_FORMAT = 40
XML = 41
OCTET_STREAM = 42
EXI = 47
JSON = 50
JSON_PATCH = 51
MERGE_PATCH = 52
CBOR = 60
CWT = 61
MULTIPART_CORE = 62
CBOR_SEQ = 63
COSE_ENCRYPT = 96
COSE_MAC = 97
COSE_SIGN = 98
COSE_KEY = 101
COSE_KEY_SET = 102
SENML_JSON = 110
SENSML_JSON = 111
SENML_CBOR = 112
SENSML_CBOR = 113
SENML_EXI = 114
SENSML_EXI = 115
COAP_GROUP_JSON = 256
PKCS7_SERVER_GENERATED_KEY = 280
PKCS7_CERTS_ONLY = 281
PKCS8 = 284
CSRATTRS = 285
PKCS10 = 286
PKIX_CERT = 287
SENML_XML = 310
SENSML_XML = 311
SENML_ETCH_JSON = 320
SENML_ETCH_CBOR = 322
YANG_DATA_CBOR = 340
TD_JSON = 432
VOUCHER_COSE_CBOR = 836
LWM2M_TLV_OLD = 1542   # LwM2M 1.0 draft numbers, still seen in the field
LWM2M_JSON_OLD = 1543
LWM2M_TLV = 11542
LWM2M_JSON = 11543
LWM2M_CBOR = 11544

_TABLE: dict[int, str] = {
    TEXT_PLAIN: "text/plain;charset=utf-8",
    COSE_ENCRYPT0: 'application/cose;cose-type="cose-encrypt0"',
    COSE_MAC0: 'application/cose;cose-type="cose-mac0"',
    COSE_SIGN1: 'application/cose;cose-type="cose-sign1"',
    19: "application/ace+cbor",
    21: "image/gif",
    22: "image/jpeg",
    23: "image/png",
    LINK_FORMAT: "application/link-format",
    XML: "application/xml",
    OCTET_STREAM: "application/octet-stream",
    EXI: "application/exi",
    JSON: "application/json",
    JSON_PATCH: "application/json-patch+json",
    MERGE_PATCH: "application/merge-patch+json",
    CBOR: "application/cbor",
    CWT: "application/cwt",
    MULTIPART_CORE: "application/multipart-core",
    CBOR_SEQ: "application/cbor-seq",
    COSE_ENCRYPT: 'application/cose;cose-type="cose-encrypt"',
    COSE_MAC: 'application/cose;cose-type="cose-mac"',
    COSE_SIGN: 'application/cose;cose-type="cose-sign"',
    COSE_KEY: "application/cose-key",
    COSE_KEY_SET: "application/cose-key-set",
    SENML_JSON: "application/senml+json",
    SENSML_JSON: "application/sensml+json",
    SENML_CBOR: "application/senml+cbor",
    SENSML_CBOR: "application/sensml+cbor",
    SENML_EXI: "application/senml-exi",
    SENSML_EXI: "application/sensml-exi",
    COAP_GROUP_JSON: "application/coap-group+json",
    PKCS7_SERVER_GENERATED_KEY: 'application/pkcs7-mime;smime-type="server-generated-key"',
    PKCS7_CERTS_ONLY: 'application/pkcs7-mime;smime-type="certs-only"',
    PKCS8: "application/pkcs8",
    CSRATTRS: "application/csrattrs",
    PKCS10: "application/pkcs10",
    PKIX_CERT: "application/pkix-cert",
    SENML_XML: "application/senml+xml",
    SENSML_XML: "application/sensml+xml",
    SENML_ETCH_JSON: "application/senml-etch+json",
    SENML_ETCH_CBOR: "application/senml-etch+cbor",
    YANG_DATA_CBOR: "application/yang-data+cbor",
    TD_JSON: "application/td+json",
    VOUCHER_COSE_CBOR: "application/voucher-cose+cbor",
    LWM2M_TLV_OLD: "application/vnd.oma.lwm2m+tlv (LwM2M 1.0 draft number)",
    LWM2M_JSON_OLD: "application/vnd.oma.lwm2m+json (LwM2M 1.0 draft number)",
    LWM2M_TLV: "application/vnd.oma.lwm2m+tlv",
    LWM2M_JSON: "application/vnd.oma.lwm2m+json",
    LWM2M_CBOR: "application/vnd.oma.lwm2m+cbor",
}

_KNOWN = {n: ContentFormat(n, t) for n, t in _TABLE.items()}


def lookup(number: int) -> ContentFormat:
    known = _KNOWN.get(number)
    if known is not None:
        return known
    return ContentFormat(number, f"unknown-{number}", known=False)
