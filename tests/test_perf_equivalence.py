"""Fast paths added for speed (issue #2) give what the plain definitions give."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st
from sigma.rule import SigmaRule

from monitor.operations import lwm2m_path
from monitor.sigma_compile import compile_rule, field_getter, value_matcher
from monitor.sigma_ir import rule_conditions


def reference_lwm2m_path(segments):
    if not segments or (len(segments) == 1 and segments[0] == ""):
        return "/"
    if len(segments) > 4 or not all(s.isdigit() for s in segments):
        return None
    return "/" + "/".join(str(int(s)) for s in segments)


segment = st.one_of(st.sampled_from(["0", "00", "3", "03", "65535", "", "rd", "١٢", "x1"]),
                    st.text(alphabet="0123456789", max_size=4))


@given(st.lists(segment, max_size=6).map(tuple))
def test_lwm2m_path_matches_definition(segs):
    try:
        want = reference_lwm2m_path(segs)
    except ValueError:                     # non-decimal digits such as '²'
        return
    assert lwm2m_path(segs) == want


RULE = {
    "title": "t", "id": "30c0c8ed-4638-4a2e-996b-e75bae913dec", "name": "t", "status": "test",
    "logsource": {"product": "lwm2m-monitor"}, "level": "low",
    "detection": {"selection": {"a.b": ["Nosec", "true", "5", "dtls"]}, "condition": "selection"},
}
values = st.one_of(st.none(), st.booleans(), st.integers(0, 6), st.floats(allow_nan=False),
                   st.sampled_from(["nosec", "NOSEC", "dtls", "oscore", "5", "true", "TRUE", ""]))
docs = st.one_of(
    st.fixed_dictionaries({"a": st.fixed_dictionaries({"b": values})}),
    st.fixed_dictionaries({"a": st.fixed_dictionaries({"b": st.lists(values, max_size=3)})}),
    st.fixed_dictionaries({"a": st.lists(st.fixed_dictionaries({"b": values}), max_size=3)}),
    st.fixed_dictionaries({"a": values}),
    st.just({}),
)


def reference_predicate(conditions: tuple):
    """OR of one matcher per value over the tuple getter: the code path before the fast ones."""
    kind, args = conditions[0]
    assert kind == "or"
    matchers = [(field_getter(arg[1]), value_matcher(arg[2])) for arg in args]
    return lambda doc: any(m(v) for get, m in matchers for v in get(doc))


@settings(max_examples=400)
@given(docs)
def test_string_list_set_lookup_matches_or_of_values(doc):
    conditions = rule_conditions(SigmaRule.from_dict(RULE))
    fast = compile_rule(conditions)
    slow = reference_predicate(conditions)
    assert bool(fast(doc)) == bool(slow(doc))
    # and both agree with the definition: any value at the path equals one listed string
    wants = {"nosec", "true", "5", "dtls"}
    text = [("true" if v else "false") if isinstance(v, bool) else str(v) if isinstance(v, (int, float))
            else v.casefold() if isinstance(v, str) else None for v in field_getter("a.b")(doc)]
    assert bool(fast(doc)) == any(t in wants for t in text)
