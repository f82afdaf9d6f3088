//! Differential test of `src/sip/uri.rs` against an independent recognizer: the RFC 3261
//! §25.1 ABNF for `SIP-URI`, transcribed rule by rule into data below and run by a small
//! backtracking interpreter that keeps every way a rule can match (so ambiguities are seen,
//! not resolved by a guess). Nothing here shares code with src/.
//!
//! Inputs: URIs generated from the grammar, mutations of them (the characters that separate
//! the parts: `@ ; ? : [ ] % . -`, deletions, duplications, case flips), and random strings
//! over the URI alphabet; a fixed seed, so every run sees the same cases.
//!
//! Properties:
//! - imstls names a domain identity (no userinfo, host H) ⇒ the grammar accepts the URI, every
//!   parse of it has no userinfo, and every parse's host is H;
//! - imstls parses a URI ⇒ the grammar accepts it;
//! - the grammar accepts a URI imstls refuses ⇒ every parse carries a value the grammar allows
//!   but that names nothing (port > 65535, IPv4 octet > 255, an IPv6 reference that is no
//!   address).
//!
//! `telephone-subscriber` (RFC 2806) is not transcribed: userinfo ends with a literal `@`, so
//! whatever its inner form, a URI without `@` has no userinfo in any parse, which is all the
//! identity property needs.
//!
//! The case count is printed (`cargo test --test sip_uri_differential -- --nocapture`).

#[path = "support/rng.rs"]
mod rng;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use imstls::_internal_test_exports::sip::uri::{self as sip_uri, SipHost, SipUriError};
use rng::Rng;

// ---------------------------------------------------------------------------------------------
// A tiny ABNF interpreter.

#[derive(Clone, Debug)]
enum G {
    /// A literal, case-insensitive (RFC 5234 §2.3).
    Lit(&'static str),
    /// One of these characters.
    OneOf(&'static str),
    Alpha,
    Digit,
    HexDig,
    Seq(Vec<G>),
    Alt(Vec<G>),
    Rep(usize, Option<usize>, Box<G>),
    Rule(&'static str),
}

fn lit(s: &'static str) -> G {
    G::Lit(s)
}
fn one_of(s: &'static str) -> G {
    G::OneOf(s)
}
fn r(name: &'static str) -> G {
    G::Rule(name)
}
fn seq(items: Vec<G>) -> G {
    G::Seq(items)
}
fn alt(items: Vec<G>) -> G {
    G::Alt(items)
}
fn rep(min: usize, max: Option<usize>, g: G) -> G {
    G::Rep(min, max, Box::new(g))
}
fn opt(g: G) -> G {
    rep(0, Some(1), g)
}

/// RFC 3261 §25.1, the rules `SIP-URI` needs, as written there.
fn rfc3261() -> HashMap<&'static str, G> {
    let mut g = HashMap::new();
    g.insert("alphanum", alt(vec![G::Alpha, G::Digit]));
    g.insert("mark", one_of("-_.!~*'()"));
    g.insert("unreserved", alt(vec![r("alphanum"), r("mark")]));
    g.insert("escaped", seq(vec![lit("%"), G::HexDig, G::HexDig]));
    g.insert("user-unreserved", one_of("&=+$,;?/"));
    g.insert(
        "user",
        rep(
            1,
            None,
            alt(vec![r("unreserved"), r("escaped"), r("user-unreserved")]),
        ),
    );
    g.insert(
        "password",
        rep(
            0,
            None,
            alt(vec![r("unreserved"), r("escaped"), one_of("&=+$,")]),
        ),
    );
    // telephone-subscriber (RFC 2806) is not modelled: see the module documentation.
    g.insert(
        "userinfo",
        seq(vec![
            r("user"),
            opt(seq(vec![lit(":"), r("password")])),
            lit("@"),
        ]),
    );
    g.insert(
        "hostport",
        seq(vec![r("host"), opt(seq(vec![lit(":"), r("port")]))]),
    );
    g.insert(
        "host",
        alt(vec![r("hostname"), r("IPv4address"), r("IPv6reference")]),
    );
    g.insert(
        "hostname",
        seq(vec![
            rep(0, None, seq(vec![r("domainlabel"), lit(".")])),
            r("toplabel"),
            opt(lit(".")),
        ]),
    );
    g.insert(
        "domainlabel",
        alt(vec![
            r("alphanum"),
            seq(vec![
                r("alphanum"),
                rep(0, None, alt(vec![r("alphanum"), lit("-")])),
                r("alphanum"),
            ]),
        ]),
    );
    g.insert(
        "toplabel",
        alt(vec![
            G::Alpha,
            seq(vec![
                G::Alpha,
                rep(0, None, alt(vec![r("alphanum"), lit("-")])),
                r("alphanum"),
            ]),
        ]),
    );
    let d13 = || rep(1, Some(3), G::Digit);
    g.insert(
        "IPv4address",
        seq(vec![
            d13(),
            lit("."),
            d13(),
            lit("."),
            d13(),
            lit("."),
            d13(),
        ]),
    );
    g.insert(
        "IPv6reference",
        seq(vec![lit("["), r("IPv6address"), lit("]")]),
    );
    g.insert(
        "IPv6address",
        seq(vec![
            r("hexpart"),
            opt(seq(vec![lit(":"), r("IPv4address")])),
        ]),
    );
    g.insert(
        "hexpart",
        alt(vec![
            r("hexseq"),
            seq(vec![r("hexseq"), lit("::"), opt(r("hexseq"))]),
            seq(vec![lit("::"), opt(r("hexseq"))]),
        ]),
    );
    g.insert(
        "hexseq",
        seq(vec![
            r("hex4"),
            rep(0, None, seq(vec![lit(":"), r("hex4")])),
        ]),
    );
    g.insert("hex4", rep(1, Some(4), G::HexDig));
    g.insert("port", rep(1, None, G::Digit));
    g.insert(
        "uri-parameters",
        rep(0, None, seq(vec![lit(";"), r("uri-parameter")])),
    );
    g.insert(
        "uri-parameter",
        alt(vec![
            r("transport-param"),
            r("user-param"),
            r("method-param"),
            r("ttl-param"),
            r("maddr-param"),
            r("lr-param"),
            r("other-param"),
        ]),
    );
    g.insert(
        "transport-param",
        seq(vec![
            lit("transport="),
            alt(vec![
                lit("udp"),
                lit("tcp"),
                lit("sctp"),
                lit("tls"),
                r("token"),
            ]),
        ]),
    );
    g.insert(
        "user-param",
        seq(vec![
            lit("user="),
            alt(vec![lit("phone"), lit("ip"), r("token")]),
        ]),
    );
    g.insert("method-param", seq(vec![lit("method="), r("token")]));
    g.insert(
        "ttl-param",
        seq(vec![lit("ttl="), rep(1, Some(3), G::Digit)]),
    );
    g.insert("maddr-param", seq(vec![lit("maddr="), r("host")]));
    g.insert("lr-param", lit("lr"));
    g.insert(
        "other-param",
        seq(vec![r("pname"), opt(seq(vec![lit("="), r("pvalue")]))]),
    );
    g.insert("pname", rep(1, None, r("paramchar")));
    g.insert("pvalue", rep(1, None, r("paramchar")));
    g.insert(
        "paramchar",
        alt(vec![r("param-unreserved"), r("unreserved"), r("escaped")]),
    );
    g.insert("param-unreserved", one_of("[]/:&+$"));
    g.insert(
        "headers",
        seq(vec![
            lit("?"),
            r("header"),
            rep(0, None, seq(vec![lit("&"), r("header")])),
        ]),
    );
    g.insert("header", seq(vec![r("hname"), lit("="), r("hvalue")]));
    g.insert(
        "hname",
        rep(
            1,
            None,
            alt(vec![r("hnv-unreserved"), r("unreserved"), r("escaped")]),
        ),
    );
    g.insert(
        "hvalue",
        rep(
            0,
            None,
            alt(vec![r("hnv-unreserved"), r("unreserved"), r("escaped")]),
        ),
    );
    g.insert("hnv-unreserved", one_of("[]/?:+$"));
    g.insert(
        "token",
        rep(1, None, alt(vec![r("alphanum"), one_of("-.!%*_+`'~")])),
    );
    g
}

struct Matcher<'a> {
    rules: &'a HashMap<&'static str, G>,
    input: &'a [u8],
    memo: RefCell<HashMap<(&'static str, usize), BTreeSet<usize>>>,
}

impl<'a> Matcher<'a> {
    fn new(rules: &'a HashMap<&'static str, G>, input: &'a [u8]) -> Self {
        Self {
            rules,
            input,
            memo: RefCell::new(HashMap::new()),
        }
    }

    /// Every position where `g`, started at `pos`, can end.
    fn ends(&self, g: &G, pos: usize) -> BTreeSet<usize> {
        let byte = self.input.get(pos).copied();
        let single = |ok: bool| {
            if ok {
                BTreeSet::from([pos + 1])
            } else {
                BTreeSet::new()
            }
        };
        match g {
            G::Lit(s) => {
                let end = pos + s.len();
                let ok = self
                    .input
                    .get(pos..end)
                    .is_some_and(|t| t.eq_ignore_ascii_case(s.as_bytes()));
                if ok {
                    BTreeSet::from([end])
                } else {
                    BTreeSet::new()
                }
            }
            G::OneOf(set) => single(byte.is_some_and(|b| set.as_bytes().contains(&b))),
            G::Alpha => single(byte.is_some_and(|b| b.is_ascii_alphabetic())),
            G::Digit => single(byte.is_some_and(|b| b.is_ascii_digit())),
            G::HexDig => single(byte.is_some_and(|b| b.is_ascii_hexdigit())),
            G::Seq(items) => {
                let mut current = BTreeSet::from([pos]);
                for item in items {
                    current = current.iter().flat_map(|&p| self.ends(item, p)).collect();
                    if current.is_empty() {
                        break;
                    }
                }
                current
            }
            G::Alt(items) => items.iter().flat_map(|item| self.ends(item, pos)).collect(),
            G::Rep(min, max, inner) => {
                let mut result = BTreeSet::new();
                if *min == 0 {
                    result.insert(pos);
                }
                let mut current = BTreeSet::from([pos]);
                let limit = max.unwrap_or(self.input.len() + 1);
                for count in 1..=limit {
                    let next: BTreeSet<usize> =
                        current.iter().flat_map(|&p| self.ends(inner, p)).collect();
                    if next.is_empty() {
                        break;
                    }
                    if next == current {
                        // A fixed point: more repetitions reach the same positions.
                        result.extend(next.iter().copied());
                        break;
                    }
                    if count >= *min {
                        result.extend(next.iter().copied());
                    }
                    current = next;
                }
                result
            }
            G::Rule(name) => {
                if let Some(hit) = self.memo.borrow().get(&(*name, pos)) {
                    return hit.clone();
                }
                let rule = self
                    .rules
                    .get(name)
                    .unwrap_or_else(|| panic!("rule {name}"));
                let result = self.ends(rule, pos);
                self.memo.borrow_mut().insert((*name, pos), result.clone());
                result
            }
        }
    }
}

/// One complete parse of a SIP-URI: whether it has userinfo, its host and port text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Parse {
    userinfo: bool,
    host: String,
    port: Option<String>,
}

/// Every complete parse of `input` as `SIP-URI`.
fn oracle(rules: &HashMap<&'static str, G>, input: &str) -> BTreeSet<Parse> {
    let m = Matcher::new(rules, input.as_bytes());
    let len = input.len();
    let mut parses = BTreeSet::new();
    let Some(&after_scheme) = m.ends(&lit("sip:"), 0).iter().next() else {
        return parses;
    };
    let mut host_starts: Vec<(bool, usize)> = vec![(false, after_scheme)];
    host_starts.extend(
        m.ends(&r("userinfo"), after_scheme)
            .into_iter()
            .map(|e| (true, e)),
    );
    let tail = seq(vec![r("uri-parameters"), opt(r("headers"))]);
    for (userinfo, start) in host_starts {
        for host_end in m.ends(&r("host"), start) {
            let mut port_ends = vec![(None, host_end)];
            for e in m.ends(&seq(vec![lit(":"), r("port")]), host_end) {
                port_ends.push((Some(input[host_end + 1..e].to_owned()), e));
            }
            for (port, after_port) in port_ends {
                if m.ends(&tail, after_port).contains(&len) {
                    parses.insert(Parse {
                        userinfo,
                        host: input[start..host_end].to_owned(),
                        port,
                    });
                }
            }
        }
    }
    parses
}

// ---------------------------------------------------------------------------------------------
// Inputs.

fn label(rng: &mut Rng) -> String {
    let mut s = String::new();
    s.push(
        rng.pick(&["p", "c", "x", "ims", "a1", "9"])
            .chars()
            .next()
            .unwrap(),
    );
    for _ in 0..rng.below(6) {
        s.push_str(rng.pick(&["a", "b", "-", "1", "Z", "cscf"]));
    }
    if s.ends_with('-') {
        s.push('0');
    }
    s
}

fn host(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => format!(
            "{}.{}.{}.{}",
            rng.below(300),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        1 => format!(
            "[{}]",
            rng.pick(&[
                "::1",
                "2001:db8::1",
                "fe80::a:b:c:d",
                "::ffff:1.2.3.4",
                "1:2:3:4:5:6:7:8"
            ])
        ),
        _ => {
            let mut h = String::new();
            for _ in 0..rng.below(3) {
                h.push_str(&label(rng));
                h.push('.');
            }
            h.push_str(rng.pick(&["test", "net", "example", "Com", "x9"]));
            if rng.below(8) == 0 {
                h.push('.');
            }
            h
        }
    }
}

fn generated(rng: &mut Rng) -> String {
    let mut uri = String::from(rng.pick(&["sip:", "SIP:", "sip:", "sips:", "Sip:"]));
    if rng.below(3) == 0 {
        uri.push_str(rng.pick(&[
            "alice",
            "pcscf.ims.victim.net;x",
            "a?b",
            "%41b",
            "+1555",
            "u&=+$,/",
        ]));
        if rng.below(3) == 0 {
            uri.push(':');
            uri.push_str(rng.pick(&["pw", "", "p%20w&=+$,"]));
        }
        uri.push('@');
    }
    uri.push_str(&host(rng));
    if rng.below(2) == 0 {
        uri.push(':');
        uri.push_str(rng.pick(&["5061", "0", "65535", "65536", "007", "99999999"]));
    }
    for _ in 0..rng.below(3) {
        uri.push(';');
        uri.push_str(rng.pick(&[
            "transport=tls",
            "transport=x`y",
            "lr",
            "maddr=[::1]",
            "ttl=15",
            "user=phone",
            "method=INVITE",
            "p=%2f",
            "a[b]=:/&+$",
            "x",
        ]));
    }
    if rng.below(4) == 0 {
        uri.push('?');
        uri.push_str(rng.pick(&["subject=hi", "h=&k=v", "a=b", "q=?[]/:+$"]));
    }
    uri
}

fn mutated(rng: &mut Rng, base: &str) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 => bytes.insert(at, b"@;?:[]%.-=&/ `\"#"[rng.below(16)]),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            2 if at < bytes.len() => {
                let end = (at + 1 + rng.below(6)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            3 if at < bytes.len() => bytes[at] ^= 0x20,
            _ => bytes.truncate(at),
        }
    }
    bytes.retain(|b| b.is_ascii());
    String::from_utf8(bytes).expect("ASCII")
}

fn random_string(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"sip:SIPab1.-@;?=&[]%/_x9fF:";
    let mut s = String::from("sip:");
    for _ in 0..rng.below(24) {
        s.push(ALPHABET[rng.below(ALPHABET.len())] as char);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The comparison.

fn normalised_hostname(text: &str) -> String {
    text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase()
}

fn host_equal(imstls: &SipHost, oracle_text: &str) -> bool {
    match imstls {
        SipHost::Domain(d) => *d == normalised_hostname(oracle_text),
        SipHost::Ipv4(ip) => oracle_text.parse::<Ipv4Addr>().ok() == Some(*ip),
        SipHost::Ipv6(ip) => {
            let inner = oracle_text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'));
            inner.and_then(|t| t.parse::<Ipv6Addr>().ok()) == Some(*ip)
        }
    }
}

/// A value the grammar allows that names nothing (the only reasons imstls may refuse a
/// grammatical URI).
fn names_nothing(parse: &Parse) -> bool {
    let port_too_big = parse.port.as_deref().is_some_and(|p| {
        p.trim_start_matches('0').len() > 5 || p.parse::<u64>().is_ok_and(|v| v > 65_535)
    });
    let bad_v4 = !parse.host.starts_with('[')
        && parse.host.split('.').count() == 4
        && parse.host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && parse.host.parse::<Ipv4Addr>().is_err();
    let bad_v6 = parse.host.starts_with('[')
        && parse.host[1..parse.host.len() - 1]
            .parse::<Ipv6Addr>()
            .is_err();
    port_too_big || bad_v4 || bad_v6
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    grammatical: usize,
    domain_identities: usize,
    with_userinfo: usize,
    refused_names_nothing: usize,
    not_sip: usize,
}

fn compare(rules: &HashMap<&'static str, G>, uri: &str, tally: &mut Tally) {
    tally.cases += 1;
    let parses = oracle(rules, uri);
    if !parses.is_empty() {
        tally.grammatical += 1;
    }
    match sip_uri::parse(uri) {
        Ok(parsed) => {
            assert!(
                !parses.is_empty(),
                "imstls parsed {uri:?}; the grammar refuses it"
            );
            assert!(
                parses
                    .iter()
                    .all(|p| p.userinfo == parsed.userinfo.is_some()),
                "{uri:?}: userinfo {:?} vs grammar {parses:?}",
                parsed.userinfo
            );
            assert!(
                parses.iter().all(|p| host_equal(&parsed.host, &p.host)),
                "{uri:?}: host {:?} vs grammar {parses:?}",
                parsed.host
            );
            match parsed.domain_identity() {
                Some(_) => tally.domain_identities += 1,
                None => tally.with_userinfo += 1,
            }
        }
        Err(SipUriError::NotSip) => {
            assert!(
                parses.is_empty(),
                "{uri:?}: imstls says not sip:, grammar {parses:?}"
            );
            tally.not_sip += 1;
        }
        Err(SipUriError::Invalid(part)) => {
            if !parses.is_empty() {
                assert!(
                    parses.iter().all(names_nothing),
                    "{uri:?}: imstls refuses ({part}), the grammar accepts {parses:?}"
                );
                tally.refused_names_nothing += 1;
            }
        }
    }
}

#[test]
fn oracle_recognises_the_rfc_examples() {
    let rules = rfc3261();
    for uri in [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]:5070",
    ] {
        assert!(!oracle(&rules, uri).is_empty(), "{uri}");
        assert!(sip_uri::parse(uri).is_ok(), "{uri}");
    }
    let p = oracle(&rules, "sip:alice;day=tuesday@atlanta.com");
    assert!(
        p.iter().all(|p| p.userinfo && p.host == "atlanta.com"),
        "{p:?}"
    );
    for uri in ["sip:a@b@c", "sip:host:5x", "sip:", "sip:ho st", "sip:[::1"] {
        assert!(oracle(&rules, uri).is_empty(), "{uri}");
    }
}

#[test]
fn imstls_sip_uri_parsing_agrees_with_the_rfc3261_grammar() {
    let rules = rfc3261();
    let mut rng = Rng(0x5192_3261_5922_0001);
    let mut tally = Tally::default();
    let mut bases = Vec::new();
    for _ in 0..4_000 {
        let uri = generated(&mut rng);
        compare(&rules, &uri, &mut tally);
        bases.push(uri);
    }
    for i in 0..12_000 {
        let uri = mutated(&mut rng, &bases[i % bases.len()]);
        compare(&rules, &uri, &mut tally);
    }
    for _ in 0..4_000 {
        let uri = random_string(&mut rng);
        compare(&rules, &uri, &mut tally);
    }
    println!("sip_uri differential: {tally:?}");
    assert_eq!(tally.cases, 20_000);
    // The generator must exercise every outcome, or the comparison proves little.
    assert!(tally.domain_identities > 1_000, "{tally:?}");
    assert!(tally.with_userinfo > 500, "{tally:?}");
    assert!(tally.refused_names_nothing > 50, "{tally:?}");
    assert!(tally.grammatical < tally.cases - 2_000, "{tally:?}");
}

/// The domain rule imstls used before issue 11 (cut at `;`/`?`, then look for `@`), kept here
/// only to show that this comparison catches it.
fn old_cut_at_semicolon_rule(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") {
        return None;
    }
    let hostport = rest.split([';', '?']).next().unwrap_or_default();
    if hostport.contains('@') {
        return None;
    }
    let host = match hostport.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => hostport.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then(|| normalised_hostname(host))
}

#[test]
fn the_comparison_catches_the_old_rule() {
    let rules = rfc3261();
    let mut rng = Rng(0x5192_3261_5922_0001);
    let mut disagreements = 0;
    for i in 0..4_000 {
        let uri = if i % 2 == 0 {
            generated(&mut rng)
        } else {
            random_string(&mut rng)
        };
        if let Some(host) = old_cut_at_semicolon_rule(&uri) {
            let parses = oracle(&rules, &uri);
            let agrees = !parses.is_empty()
                && parses
                    .iter()
                    .all(|p| !p.userinfo && normalised_hostname(&p.host) == host);
            disagreements += usize::from(!agrees);
        }
    }
    println!("old rule: {disagreements} disagreements in 4000 cases");
    assert!(disagreements > 100, "{disagreements}");
}

/// The same comparison over the inputs of a directory, e.g. the libFuzzer corpus the `sip_uri`
/// target grew: `IMSTLS_SIP_URI_CORPUS=fuzz/work-corpus/sip_uri cargo test --test
/// sip_uri_differential -- --nocapture`. Without the variable it checks nothing and says so.
#[test]
fn fuzz_corpus_agrees_with_the_grammar_when_given() {
    let Ok(dir) = std::env::var("IMSTLS_SIP_URI_CORPUS") else {
        println!("IMSTLS_SIP_URI_CORPUS not set: no corpus compared");
        return;
    };
    let rules = rfc3261();
    let mut tally = Tally::default();
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if text.len() > 300 {
            continue; // the interpreter is quadratic; libFuzzer's long inputs add little here
        }
        compare(&rules, text, &mut tally);
        compare(&rules, &format!("sip:{text}"), &mut tally);
    }
    println!("sip_uri differential over {dir}: {tally:?}");
}
