//! vmod_directors against varnishd 7.1: the interface (read off the JSON
//! spec in varnishd's libvmod_directors.so; default values varnishd
//! marks optional show as `=?`)
//! and the picking. Through a real server: tests/vtc/m00003.vtc.

#[path = "../../vtc/tests/specsig/mod.rs"]
mod specsig;

use lacquer_module::{Backend, Director};
use lacquer_vmod_directors::{vmod, Members};

const VARNISHD: &[&str] = &[
    "round_robin() -> OBJECT",
    "round_robin.add_backend(BACKEND) -> VOID",
    "round_robin.remove_backend(BACKEND) -> VOID",
    "round_robin.backend() -> BACKEND",
    "fallback(BOOL sticky=false) -> OBJECT",
    "fallback.add_backend(BACKEND) -> VOID",
    "fallback.remove_backend(BACKEND) -> VOID",
    "fallback.backend() -> BACKEND",
    "random() -> OBJECT",
    "random.add_backend(BACKEND, REAL) -> VOID",
    "random.remove_backend(BACKEND) -> VOID",
    "random.backend() -> BACKEND",
    "hash() -> OBJECT",
    "hash.add_backend(BACKEND, REAL weight=1) -> VOID",
    "hash.remove_backend(BACKEND) -> VOID",
    "hash.backend(STRANDS) -> BACKEND",
    "shard() -> OBJECT",
    "shard.set_warmup(REAL probability=0) -> VOID",
    "shard.set_rampup(DURATION duration=0) -> VOID",
    "shard.associate(BLOB param=?) -> VOID",
    "shard.add_backend(BACKEND backend, STRING ident=?, DURATION rampup=?, REAL weight=?) -> BOOL",
    "shard.remove_backend(BACKEND backend=?, STRING ident=?) -> BOOL",
    "shard.clear() -> BOOL",
    "shard.reconfigure(INT replicas=67) -> BOOL",
    "shard.key(STRANDS) -> INT",
    "shard.backend(ENUM{HASH,URL,KEY,BLOB} by=?, INT key=?, BLOB key_blob=?, INT alt=?, REAL warmup=?, \
     BOOL rampup=?, ENUM{CHOSEN,IGNORE,ALL} healthy=?, BLOB param=?, ENUM{NOW,LAZY} resolve=?) -> BACKEND",
    "shard.debug(INT) -> VOID",
    "shard_param() -> OBJECT",
    "shard_param.clear() -> VOID",
    "shard_param.set(ENUM{HASH,URL,KEY,BLOB} by=?, INT key=?, BLOB key_blob=?, INT alt=?, REAL warmup=?, \
     BOOL rampup=?, ENUM{CHOSEN,IGNORE,ALL} healthy=?) -> VOID",
    "shard_param.get_by() -> STRING",
    "shard_param.get_key() -> INT",
    "shard_param.get_alt() -> INT",
    "shard_param.get_warmup() -> REAL",
    "shard_param.get_rampup() -> BOOL",
    "shard_param.get_healthy() -> STRING",
    "shard_param.use() -> BLOB",
    "lookup(STRING) -> BACKEND",
];

#[test]
fn the_interface_is_varnishds() {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    assert_eq!(spec.name, "directors");
    let mut ours = specsig::lines(&spec);
    let mut theirs: Vec<String> = VARNISHD.iter().map(|s| s.to_string()).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

fn b(n: u64) -> Backend {
    Backend(Some(n))
}

#[test]
fn weights_are_laid_end_to_end_over_the_healthy_members() {
    let m = Members::default();
    m.add("d", b(1), 1.0).unwrap();
    m.add("d", b(2), 3.0).unwrap();
    let all = |_: Backend| true;
    assert_eq!(m.pick(0.0, &all), Some(b(1)));
    assert_eq!(m.pick(0.24, &all), Some(b(1)));
    assert_eq!(m.pick(0.25, &all), Some(b(2)));
    assert_eq!(m.pick(0.99, &all), Some(b(2)));
    let only_1 = |x: Backend| x == b(1);
    assert_eq!(m.pick(0.99, &only_1), Some(b(1)));
    assert_eq!(m.pick(0.5, &|_| false), None);
    assert!(!m.any_healthy(&|_| false));
    assert_eq!(m.add("d", Backend(None), 1.0).unwrap_err(), "d: NULL backend cannot be added");
    m.remove("d", b(1)).unwrap();
    assert_eq!(m.pick(0.0, &all), Some(b(2)));
}

#[test]
fn round_robin_skips_the_sick_and_fallback_sticks_when_asked() {
    use lacquer_vmod_directors::{FallbackDirector, RoundRobinDirector};
    let all = |_: Backend| true;
    let rr = RoundRobinDirector::default();
    assert_eq!(rr.resolve(&all), None, "no members");
    for n in 1..=3 {
        rr.members().add("rr", b(n), 1.0).unwrap();
    }
    let picks: Vec<_> = (0..4).map(|_| rr.resolve(&all).unwrap().0.unwrap()).collect();
    assert_eq!(picks, [1, 2, 3, 1]);
    let not_2 = |x: Backend| x != b(2);
    let picks: Vec<_> = (0..3).map(|_| rr.resolve(&not_2).unwrap().0.unwrap()).collect();
    assert_eq!(picks, [3, 1, 3]);

    for sticky in [false, true] {
        let fb = FallbackDirector::new(sticky);
        fb.members().add("fb", b(1), 1.0).unwrap();
        fb.members().add("fb", b(2), 1.0).unwrap();
        assert_eq!(fb.resolve(&all), Some(b(1)));
        assert_eq!(fb.resolve(&not_1), Some(b(2)), "the first healthy one");
        // Back to the first when it is well again, unless sticky.
        assert_eq!(fb.resolve(&all), Some(if sticky { b(2) } else { b(1) }));
        assert!(fb.healthy(&not_1) && !fb.healthy(&|_| false));
    }
    fn not_1(x: Backend) -> bool {
        x != b(1)
    }
}

#[test]
fn keys_hash_to_the_members_varnishd_picks() {
    use lacquer_vmod_directors::HashDirector;
    // Read off varnishd 7.1.1: `h1.add_backend(s1); h1.add_backend(s2, 1);`
    // and the member `h1.backend(KEY)` names for each key.
    let h = HashDirector::default();
    h.members().add("h1", b(1), 1.0).unwrap();
    h.members().add("h1", b(2), 1.0).unwrap();
    let all = |_: Backend| true;
    for (key, want) in
        [("/1", 2), ("/3", 1), ("/13", 1), ("/8", 2), ("/a", 1), ("/b", 2), ("/c", 2), ("/d", 1), ("127.0.0.1", 2)]
    {
        assert_eq!(h.pick(key.as_bytes(), &all), Some(b(want)), "{key}");
    }
}
