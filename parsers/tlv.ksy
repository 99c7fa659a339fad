meta:
  id: lwm2m_tlv
  title: OMA LwM2M TLV (CoAP Content-Format 11542)
  endian: be
  ks-version: 0.11
doc: |
  OMA LwM2M TLV as defined in OMA-TS-LightweightM2M-V1_0 §6.4.3 (unchanged in 1.1/1.2 Core
  §7.4.3). A payload is a sequence of entries; an object-instance entry and a multiple-resource
  entry carry a nested sequence of entries as their value, the other two carry the raw value
  bytes, whose type only the object model knows.
seq:
  - id: entries
    type: entry
    repeat: eos
types:
  entry:
    seq:
      - id: header
        type: header
      - id: value
        size: header.length
        type:
          switch-on: header.identifier_type
          cases:
            'identifier_type::object_instance': children
            'identifier_type::multiple_resource': children
  header:
    doc: The type byte, the identifier and the length field; its size is 2 to 6 bytes.
    seq:
      - id: identifier_type
        type: b2
        enum: identifier_type
        doc: type byte bits 7-6
      - id: wide_identifier
        type: b1
        doc: type byte bit 5; 1 = 16-bit identifier, 0 = 8-bit
      - id: length_type
        type: b2
        doc: type byte bits 4-3; 0 = length in bits 2-0, 1/2/3 = 8/16/24-bit length field
      - id: short_length
        type: b3
        doc: type byte bits 2-0, the value length when length_type is 0
      - id: identifier
        type:
          switch-on: wide_identifier
          cases:
            true: u2
            false: u1
      - id: length_field
        if: length_type != 0
        type:
          switch-on: length_type
          cases:
            1: u1
            2: u2
            3: b24
    instances:
      length:
        value: 'length_type == 0 ? short_length : length_field'
  children:
    seq:
      - id: entries
        type: entry
        repeat: eos
enums:
  identifier_type:
    0: object_instance
    1: resource_instance
    2: multiple_resource
    3: resource_value
