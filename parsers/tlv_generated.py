# This is a generated file! Please edit source .ksy file and use kaitai-struct-compiler to rebuild
# type: ignore

import kaitaistruct
from kaitaistruct import KaitaiStruct, KaitaiStream, BytesIO
from enum import IntEnum


if getattr(kaitaistruct, 'API_VERSION', (0, 9)) < (0, 11):
    raise Exception("Incompatible Kaitai Struct Python API: 0.11 or later is required, but you have %s" % (kaitaistruct.__version__))

class Lwm2mTlv(KaitaiStruct):
    """OMA LwM2M TLV as defined in OMA-TS-LightweightM2M-V1_0 §6.4.3 (unchanged in 1.1/1.2 Core
    §7.4.3). A payload is a sequence of entries; an object-instance entry and a multiple-resource
    entry carry a nested sequence of entries as their value, the other two carry the raw value
    bytes, whose type only the object model knows.
    """

    class IdentifierType(IntEnum):
        object_instance = 0
        resource_instance = 1
        multiple_resource = 2
        resource_value = 3
    def __init__(self, _io, _parent=None, _root=None):
        super(Lwm2mTlv, self).__init__(_io)
        self._parent = _parent
        self._root = _root or self
        self._read()

    def _read(self):
        self.entries = []
        i = 0
        while not self._io.is_eof():
            self.entries.append(Lwm2mTlv.Entry(self._io, self, self._root))
            i += 1



    def _fetch_instances(self):
        pass
        for i in range(len(self.entries)):
            pass
            self.entries[i]._fetch_instances()


    class Children(KaitaiStruct):
        def __init__(self, _io, _parent=None, _root=None):
            super(Lwm2mTlv.Children, self).__init__(_io)
            self._parent = _parent
            self._root = _root
            self._read()

        def _read(self):
            self.entries = []
            i = 0
            while not self._io.is_eof():
                self.entries.append(Lwm2mTlv.Entry(self._io, self, self._root))
                i += 1



        def _fetch_instances(self):
            pass
            for i in range(len(self.entries)):
                pass
                self.entries[i]._fetch_instances()



    class Entry(KaitaiStruct):
        def __init__(self, _io, _parent=None, _root=None):
            super(Lwm2mTlv.Entry, self).__init__(_io)
            self._parent = _parent
            self._root = _root
            self._read()

        def _read(self):
            self.header = Lwm2mTlv.Header(self._io, self, self._root)
            _on = self.header.identifier_type
            if _on == Lwm2mTlv.IdentifierType.multiple_resource:
                pass
                self._raw_value = self._io.read_bytes(self.header.length)
                _io__raw_value = KaitaiStream(BytesIO(self._raw_value))
                self.value = Lwm2mTlv.Children(_io__raw_value, self, self._root)
            elif _on == Lwm2mTlv.IdentifierType.object_instance:
                pass
                self._raw_value = self._io.read_bytes(self.header.length)
                _io__raw_value = KaitaiStream(BytesIO(self._raw_value))
                self.value = Lwm2mTlv.Children(_io__raw_value, self, self._root)
            else:
                pass
                self.value = self._io.read_bytes(self.header.length)


        def _fetch_instances(self):
            pass
            self.header._fetch_instances()
            _on = self.header.identifier_type
            if _on == Lwm2mTlv.IdentifierType.multiple_resource:
                pass
                self.value._fetch_instances()
            elif _on == Lwm2mTlv.IdentifierType.object_instance:
                pass
                self.value._fetch_instances()
            else:
                pass


    class Header(KaitaiStruct):
        """The type byte, the identifier and the length field; its size is 2 to 6 bytes."""
        def __init__(self, _io, _parent=None, _root=None):
            super(Lwm2mTlv.Header, self).__init__(_io)
            self._parent = _parent
            self._root = _root
            self._read()

        def _read(self):
            self.identifier_type = KaitaiStream.resolve_enum(Lwm2mTlv.IdentifierType, self._io.read_bits_int_be(2))
            self.wide_identifier = self._io.read_bits_int_be(1) != 0
            self.length_type = self._io.read_bits_int_be(2)
            self.short_length = self._io.read_bits_int_be(3)
            _on = self.wide_identifier
            if _on == False:
                pass
                self.identifier = self._io.read_u1()
            elif _on == True:
                pass
                self.identifier = self._io.read_u2be()
            if self.length_type != 0:
                pass
                _on = self.length_type
                if _on == 1:
                    pass
                    self.length_field = self._io.read_u1()
                elif _on == 2:
                    pass
                    self.length_field = self._io.read_u2be()
                elif _on == 3:
                    pass
                    self.length_field = self._io.read_bits_int_be(24)



        def _fetch_instances(self):
            pass
            _on = self.wide_identifier
            if _on == False:
                pass
            elif _on == True:
                pass
            if self.length_type != 0:
                pass
                _on = self.length_type
                if _on == 1:
                    pass
                elif _on == 2:
                    pass
                elif _on == 3:
                    pass


        @property
        def length(self):
            if hasattr(self, '_m_length'):
                return self._m_length

            self._m_length = (self.short_length if self.length_type == 0 else self.length_field)
            return getattr(self, '_m_length', None)



