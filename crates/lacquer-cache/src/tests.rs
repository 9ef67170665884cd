use super::*;

type C = Arc<Cache<&'static str>>;

fn no_headers(_: &[u8]) -> Option<Vec<u8>> {
    None
}

fn want(now: f64) -> Want<'static> {
    Want {
        url: b"/",
        header: &no_headers,
        ignore_busy: false,
        always_miss: false,
        ignore_vary: false,
        vary_ignore: &[],
        grace: None,
        now,
    }
}

fn life(ttl: f64, grace: f64) -> Lifetime {
    Lifetime { t_origin: 100.0, ttl, grace, keep: 0.0 }
}

fn miss(c: &C, key: &[u8], now: f64) -> Busy<&'static str> {
    match c.lookup(key, &want(now)) {
        Lookup::Miss(b, _) => b,
        _ => panic!("expected a miss"),
    }
}

fn publish(c: &C, key: &[u8], ttl: f64, body: &[u8]) -> Arc<Object<&'static str>> {
    let b = miss(c, key, 100.0);
    let (_, obj) = b.publish("head", 10, 7, life(ttl, 0.0), Some(Vec::new())).unwrap();
    obj.append(body.to_vec()).unwrap();
    obj.finish(true);
    obj
}

#[test]
fn a_published_object_is_hit_until_its_ttl_runs_out() {
    let c: C = Cache::new(None);
    publish(&c, b"/a", 10.0, b"hello");
    match c.lookup(b"/a", &want(105.0)) {
        Lookup::Hit(oc) => {
            assert_eq!(oc.object().unwrap().head, "head");
            assert_eq!(oc.hits(), 1);
        }
        _ => panic!("expected a hit"),
    }
    assert!(matches!(c.lookup(b"/a", &want(111.0)), Lookup::Miss(_, None)));
    assert_eq!(c.stats().cache_hit.load(Ordering::Relaxed), 1);
    assert_eq!(c.stats().cache_miss.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn concurrent_misses_wait_for_one_fetch_and_read_it_as_it_streams() {
    let c: C = Cache::new(None);
    let busy = miss(&c, b"/s", 100.0);
    let Lookup::Wait(ticket) = c.lookup(b"/s", &want(100.0)) else { panic!("expected to wait") };
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            ticket.wait().await;
            let Lookup::Hit(oc) = c.lookup(b"/s", &want(100.0)) else { panic!("expected a hit after waiting") };
            let mut r = oc.object().unwrap().reader();
            let mut got = Vec::new();
            while let Some(p) = r.next().await {
                got.extend_from_slice(&p.unwrap());
            }
            got
        })
    };
    tokio::task::yield_now().await;
    let (_, obj) = busy.publish("h", 1, 1, life(60.0, 0.0), Some(Vec::new())).unwrap();
    obj.append(b"one ".to_vec()).unwrap();
    tokio::task::yield_now().await;
    obj.append(b"two".to_vec()).unwrap();
    obj.finish(true);
    assert_eq!(waiter.await.unwrap(), b"one two");
    assert_eq!(c.stats().busy_sleep.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_withdrawn_fetch_wakes_the_waiters_and_the_next_one_fetches() {
    let c: C = Cache::new(None);
    let busy = miss(&c, b"/w", 100.0);
    let Lookup::Wait(ticket) = c.lookup(b"/w", &want(100.0)) else { panic!("expected to wait") };
    drop(busy);
    ticket.wait().await;
    assert!(matches!(c.lookup(b"/w", &want(100.0)), Lookup::Miss(..)));
}

#[test]
fn variants_are_told_apart_by_vary() {
    let c: C = Cache::new(None);
    let spec = |v: &str| Some(vec![(b"accept-language".to_vec(), Some(v.as_bytes().to_vec()))]);
    for (lang, head) in [("en", "english"), ("fr", "french")] {
        let hdr = move |n: &[u8]| (n == b"accept-language").then(|| lang.as_bytes().to_vec());
        let w = Want { header: &hdr, ..want(100.0) };
        let Lookup::Miss(b, _) = c.lookup(b"/v", &w) else { panic!("expected a miss for {lang}") };
        b.publish(head, 1, 1, life(60.0, 0.0), spec(lang)).unwrap();
    }
    for (lang, head) in [("fr", "french"), ("en", "english")] {
        let hdr = move |n: &[u8]| (n == b"accept-language").then(|| format!(" {lang} ").into_bytes());
        let w = Want { header: &hdr, ..want(100.0) };
        let Lookup::Hit(oc) = c.lookup(b"/v", &w) else { panic!("expected a hit for {lang}") };
        assert_eq!(oc.object().unwrap().head, head);
    }
    let w = Want { header: &no_headers, ..want(100.0) };
    assert!(matches!(c.lookup(b"/v", &w), Lookup::Miss(..)), "no Accept-Language is a third variant");
}

#[test]
fn grace_serves_stale_while_one_background_fetch_refreshes() {
    let c: C = Cache::new(None);
    let b = miss(&c, b"/g", 100.0);
    b.publish("old", 1, 1, life(10.0, 30.0), Some(Vec::new())).unwrap();
    let Lookup::Grace(oc, Some(bg)) = c.lookup(b"/g", &want(115.0)) else { panic!("expected grace with a fetch") };
    assert_eq!(oc.object().unwrap().head, "old");
    assert!(matches!(c.lookup(b"/g", &want(115.0)), Lookup::Grace(_, None)), "one background fetch only");
    bg.publish("new", 1, 2, Lifetime { t_origin: 115.0, ttl: 10.0, grace: 30.0, keep: 0.0 }, Some(Vec::new())).unwrap();
    let Lookup::Hit(oc) = c.lookup(b"/g", &want(116.0)) else { panic!("expected the new object") };
    assert_eq!(oc.object().unwrap().head, "new");
    // Past grace, the stale object is not delivered.
    let w = Want { grace: Some(0.0), ..want(126.0) };
    assert!(matches!(c.lookup(b"/g", &w), Lookup::Miss(..)));
}

#[test]
fn markers_say_hit_for_miss_and_hit_for_pass_without_waiting() {
    let c: C = Cache::new(None);
    miss(&c, b"/m", 100.0).hit_for_miss(9, life(120.0, 0.0), Some(Vec::new()), "m");
    let Lookup::HitMiss(first, _) = c.lookup(b"/m", &want(101.0)) else { panic!("expected hit-for-miss") };
    // Another client does not wait on the first one's fetch.
    assert!(matches!(c.lookup(b"/m", &want(101.0)), Lookup::HitMiss(..)));
    drop(first);
    miss(&c, b"/p", 100.0).hit_for_pass(9, life(60.0, 0.0), Some(Vec::new()), "p");
    assert!(matches!(c.lookup(b"/p", &want(150.0)), Lookup::HitPass(_)));
    assert!(matches!(c.lookup(b"/p", &want(161.0)), Lookup::Miss(..)));
    assert_eq!(c.stats().cache_hitmiss.load(Ordering::Relaxed), 2);
    assert_eq!(c.stats().cache_hitpass.load(Ordering::Relaxed), 1);
}

#[test]
fn expiry_removes_objects_when_their_time_is_up() {
    let c: C = Cache::new(None);
    publish(&c, b"/e1", 5.0, b"x");
    publish(&c, b"/e2", 50.0, b"y");
    assert_eq!(c.stats().n_object.load(Ordering::Relaxed), 2);
    assert_eq!(c.expire(104.0), 0);
    assert_eq!(c.expire(106.0), 1);
    assert_eq!(c.stats().n_object.load(Ordering::Relaxed), 1);
    assert_eq!(c.stats().n_expired.load(Ordering::Relaxed), 1);
    assert_eq!(c.stats().n_objecthead.load(Ordering::Relaxed), 1, "an empty head is forgotten");
}

#[test]
fn a_full_store_evicts_the_least_recently_used() {
    let c: C = Cache::new(Some(1200));
    let body = vec![b'x'; 390];
    publish(&c, b"/1", 60.0, &body);
    publish(&c, b"/2", 60.0, &body);
    assert_eq!(c.store().used(), 2 * (10 + OBJECT_OVERHEAD + 390));
    // A hit long after makes /1 the more recently used.
    assert!(matches!(c.lookup(b"/1", &want(100.0 + LRU_INTERVAL + 1.0)), Lookup::Hit(_)));
    publish(&c, b"/3", 60.0, &body);
    assert_eq!(c.stats().n_lru_nuked.load(Ordering::Relaxed), 1);
    assert!(c.store().used() <= 1200);
    assert!(matches!(c.lookup(b"/2", &want(101.0)), Lookup::Miss(..)), "/2 was evicted");
    assert!(matches!(c.lookup(b"/1", &want(101.0)), Lookup::Hit(_)));
    // An object bigger than the whole store cannot be kept.
    let b = miss(&c, b"/big", 100.0);
    let (_, obj) = b.publish("h", 10, 1, life(60.0, 0.0), Some(Vec::new())).unwrap();
    assert_eq!(obj.append(vec![0; 2000]), Err(NoSpace));
}

#[test]
fn clear_removes_every_object_but_fetches_under_way() {
    let c: C = Cache::new(None);
    publish(&c, b"/a", 10.0, b"a");
    publish(&c, b"/b", 10.0, b"b");
    let _fetching = miss(&c, b"/c", 100.0);
    assert_eq!(c.clear(), 2);
    assert!(matches!(c.lookup(b"/a", &want(101.0)), Lookup::Miss(_, None)));
    assert!(matches!(c.lookup(b"/b", &want(101.0)), Lookup::Miss(_, None)));
    assert!(matches!(c.lookup(b"/c", &want(101.0)), Lookup::Wait(_)), "the fetch under way stays");
}

#[test]
fn purge_removes_every_variant_of_a_key() {
    let c: C = Cache::new(None);
    publish(&c, b"/p", 60.0, b"1");
    assert_eq!(c.purge(b"/p", 0.0), 1);
    assert!(matches!(c.lookup(b"/p", &want(101.0)), Lookup::Miss(..)));
    assert_eq!(c.purge(b"/nothing", 0.0), 0);
}

#[test]
fn always_miss_and_ignore_busy_skip_what_is_there() {
    let c: C = Cache::new(None);
    publish(&c, b"/x", 60.0, b"1");
    let w = Want { always_miss: true, ..want(101.0) };
    let Lookup::Miss(b, _) = c.lookup(b"/x", &w) else { panic!("expected a forced miss") };
    let w = Want { ignore_busy: true, always_miss: true, ..want(101.0) };
    assert!(matches!(c.lookup(b"/x", &w), Lookup::Miss(..)), "ignores the busy core");
    assert!(matches!(c.lookup(b"/x", &want(101.0)), Lookup::Hit(_)), "the older object still serves");
    drop(b);
}

#[test]
fn a_request_for_another_variant_does_not_wait_on_a_busy_one() {
    let c: C = Cache::new(None);
    let hdr = |v: &'static str| move |n: &[u8]| (n == b"foo").then(|| v.as_bytes().to_vec());
    let spec = |v: &str| Some(vec![(b"foo".to_vec(), Some(v.as_bytes().to_vec()))]);
    let h1 = hdr("1");
    let Lookup::Miss(b, _) = c.lookup(b"/pv", &Want { header: &h1, ..want(100.0) }) else { panic!() };
    b.publish("one", 1, 1, life(60.0, 0.0), spec("1")).unwrap();
    // Variant 2 is being fetched...
    let h2 = hdr("2");
    let Lookup::Miss(_busy2, _) = c.lookup(b"/pv", &Want { header: &h2, ..want(100.0) }) else { panic!() };
    // ...so another client for variant 2 waits, and one for variant 3 fetches.
    assert!(matches!(c.lookup(b"/pv", &Want { header: &h2, ..want(100.0) }), Lookup::Wait(_)));
    let h3 = hdr("3");
    assert!(matches!(c.lookup(b"/pv", &Want { header: &h3, ..want(100.0) }), Lookup::Miss(..)));
}

fn new_ban(spec: &str, uses_req: bool, test: BanTest<&'static str>) -> NewBan<&'static str> {
    NewBan { spec: spec.into(), dedup: Some(spec.into()), uses_req, uses_obj: !uses_req, test }
}

fn url_ban(prefix: &'static str) -> NewBan<&'static str> {
    let test: BanTest<&'static str> = Box::new(move |_, _, req, n| {
        *n += 1;
        req.is_some_and(|r| r.url.starts_with(prefix.as_bytes()))
    });
    new_ban(&format!("req.url ~ ^{prefix}"), true, test)
}

fn head_ban(want: &'static str) -> NewBan<&'static str> {
    let test: BanTest<&'static str> = Box::new(move |h, _, _, n| {
        *n += 1;
        *h == want
    });
    new_ban(&format!("obj.http.x == {want}"), false, test)
}

fn stat(c: &C, f: fn(&Stats) -> &AtomicU64) -> u64 {
    f(c.stats()).load(Ordering::Relaxed)
}

#[test]
fn the_list_starts_with_a_completed_magic_ban() {
    let c: C = Cache::new(None);
    let bans = c.bans();
    assert_eq!(bans.len(), 1);
    assert!(bans[0].completed());
    assert_eq!((stat(&c, |s| &s.bans), stat(&c, |s| &s.bans_added), stat(&c, |s| &s.bans_completed)), (1, 1, 1));
    publish(&c, b"/m", 60.0, b"1");
    assert_eq!(c.bans()[0].refs(), 1, "a new object points at the newest ban");
}

#[test]
fn bans_kill_older_objects_at_lookup_and_count_their_tests() {
    let c: C = Cache::new(None);
    publish(&c, b"/a", 60.0, b"1");
    publish(&c, b"/b", 60.0, b"2");
    c.ban(100.0, url_ban("/a"));
    assert_eq!(stat(&c, |s| &s.bans_req), 1);
    assert!(matches!(c.lookup(b"/a", &Want { url: b"/a", ..want(101.0) }), Lookup::Miss(..)));
    assert!(matches!(c.lookup(b"/b", &Want { url: b"/b", ..want(101.0) }), Lookup::Hit(_)));
    assert_eq!(stat(&c, |s| &s.bans_obj_killed), 1);
    assert_eq!((stat(&c, |s| &s.bans_tested), stat(&c, |s| &s.bans_tests_tested)), (2, 2));
    // /b now points at the newest ban: a second hit tests nothing.
    assert!(matches!(c.lookup(b"/b", &Want { url: b"/b", ..want(101.0) }), Lookup::Hit(_)));
    assert_eq!(stat(&c, |s| &s.bans_tested), 2);
    let bans = c.bans();
    assert_eq!((bans[0].refs(), bans[1].refs()), (1, 0));
}

#[test]
fn identical_bans_complete_older_ones() {
    let c: C = Cache::new(None);
    c.ban(100.0, url_ban("/a"));
    c.ban(101.0, url_ban("/b"));
    c.ban(102.0, url_ban("/a"));
    let bans = c.bans();
    assert!(!bans[0].completed() && !bans[1].completed() && bans[2].completed());
    assert_eq!(bans[2].spec(), "", "a completed ban keeps no expression");
    assert_eq!((stat(&c, |s| &s.bans_dups), stat(&c, |s| &s.bans_completed)), (1, 2));
    let never = NewBan { dedup: None, ..url_ban("/b") };
    c.ban(103.0, never);
    assert!(!c.bans()[2].completed(), "a ban that is never a duplicate completes nothing");
}

#[test]
fn the_lurker_tests_old_object_bans_and_trims_the_tail() {
    let c: C = Cache::new(None);
    let p = BanParams { lurker_age: 0.0, ..BanParams::default() };
    c.set_ban_params(Box::new(move || p));
    publish(&c, b"/a", 60.0, b"1");
    publish(&c, b"/b", 60.0, b"2");
    c.ban(100.0, head_ban("head"));
    c.lurker_work(99.0);
    assert_eq!(stat(&c, |s| &s.bans_lurker_tested), 0, "younger than ban_lurker_age");
    c.lurker_work(100.5);
    assert_eq!(stat(&c, |s| &s.bans_lurker_obj_killed), 2);
    assert_eq!((stat(&c, |s| &s.bans_lurker_tested), stat(&c, |s| &s.bans_lurker_tests_tested)), (2, 2));
    // The magic ban lost its objects and went; the newest stays, completed.
    let bans = c.bans();
    assert_eq!(bans.len(), 1);
    assert!(bans[0].completed());
    assert_eq!(stat(&c, |s| &s.bans_deleted), 1);
}

#[test]
fn request_bans_are_barriers_to_the_lurker() {
    let c: C = Cache::new(None);
    let p = BanParams { lurker_age: 0.0, ..BanParams::default() };
    c.set_ban_params(Box::new(move || p));
    publish(&c, b"/a", 60.0, b"1");
    c.ban(100.0, url_ban("/a"));
    c.ban(101.0, head_ban("nothing"));
    c.lurker_work(200.0);
    // Tested against the bans above the barrier, but left where it was.
    assert_eq!(stat(&c, |s| &s.bans_lurker_tested), 1);
    assert_eq!(stat(&c, |s| &s.n_object), 1);
    assert_eq!(c.bans().len(), 3);
}

#[test]
fn past_ban_cutoff_the_lurker_kills_untested() {
    let c: C = Cache::new(None);
    let p = BanParams { lurker_age: 0.0, cutoff: 1, ..BanParams::default() };
    c.set_ban_params(Box::new(move || p));
    publish(&c, b"/a", 60.0, b"1");
    c.ban(100.0, head_ban("one"));
    c.ban(101.0, head_ban("two"));
    c.lurker_work(200.0);
    assert_eq!(stat(&c, |s| &s.bans_lurker_obj_killed_cutoff), 1);
    assert_eq!(stat(&c, |s| &s.bans_lurker_tested), 0);
    assert_eq!(stat(&c, |s| &s.n_object), 0);
}

#[test]
fn markers_point_at_bans_and_are_tested_like_objects() {
    let c: C = Cache::new(None);
    miss(&c, b"/m", 100.0).hit_for_miss(9, life(120.0, 0.0), Some(Vec::new()), "head");
    assert_eq!(c.bans()[0].refs(), 1);
    c.ban(100.5, head_ban("head"));
    assert!(matches!(c.lookup(b"/m", &want(101.0)), Lookup::Miss(..)), "the banned marker is gone");
    assert_eq!(stat(&c, |s| &s.bans_obj_killed), 1);
}

#[test]
fn durations_render_as_varnish_renders_them() {
    for (d, want) in [
        (0.0, "0s"),
        (0.0001, "0s"),
        (0.123, "123ms"),
        (1.5, "1.500s"),
        (10.0, "10s"),
        (120.0, "2m"),
        (86400.0, "1d"),
        (1209600.0, "2w"),
        (-3.0, "18446744073709551613.616s"),
    ] {
        assert_eq!(render_duration(d), want, "{d}");
    }
}

#[test]
fn vary_can_ignore_a_header() {
    let c: C = Cache::new(None);
    let ae = |n: &[u8]| (n == b"accept-encoding").then(|| b"gzip".to_vec());
    let Lookup::Miss(b, _) = c.lookup(b"/g", &Want { header: &ae, ..want(100.0) }) else { panic!() };
    b.publish("z", 1, 1, life(60.0, 0.0), Some(vec![(b"accept-encoding".to_vec(), Some(b"gzip".to_vec()))])).unwrap();
    assert!(matches!(c.lookup(b"/g", &want(100.0)), Lookup::Miss(..)), "another variant");
    let w = Want { vary_ignore: &[b"accept-encoding"], ..want(100.0) };
    assert!(matches!(c.lookup(b"/g", &w), Lookup::Hit(_)), "one object for every encoding");
}

fn file_store(name: &str, size: u64, granularity: u64) -> (Arc<storage::File>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lacquer-cache-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = storage::File::open(name, &dir, size, granularity, storage::Advice::Random).unwrap();
    (Arc::new(f), dir)
}

fn counters(s: &dyn Storage) -> Vec<u64> {
    s.counters()
}

#[tokio::test]
async fn objects_in_a_file_store_are_read_back_from_the_file() {
    let (f, dir) = file_store("f1", 1 << 20, 4096);
    let c: C = Cache::with_stores(vec![f.clone(), Arc::new(storage::Malloc::new("Transient", None))]);
    let b = miss(&c, b"/f", 100.0);
    let (_, obj) = b.publish_in(0, "head", 10, 7, life(60.0, 0.0), Some(Vec::new())).map_err(|(_, e)| e).unwrap();
    let mut want_body = Vec::new();
    for i in 0..20u8 {
        let piece = vec![i; 1000 + i as usize];
        want_body.extend_from_slice(&piece);
        obj.append(piece).unwrap();
    }
    obj.finish(true);
    // Head room and one 16 KiB chunk, the chunk trimmed to the granules
    // the body used, then a second chunk for the rest, trimmed.
    assert_eq!(obj.store().name(), "f1");
    let mut got = Vec::new();
    let mut r = obj.reader();
    while let Some(p) = r.next().await {
        got.extend_from_slice(&p.unwrap());
    }
    assert_eq!(got, want_body);
    let used = f.used();
    assert_eq!(used % 4096, 0, "the file store hands out whole granules");
    assert!(used >= want_body.len() as u64 + 10 + OBJECT_OVERHEAD && used < want_body.len() as u64 + 3 * 4096);
    let v = counters(&*f);
    // c_req c_fail c_bytes c_freed g_alloc g_bytes g_space g_smf g_smf_frag g_smf_large
    assert_eq!(v[5], used);
    assert_eq!(v[6], (1 << 20) - used);
    assert_eq!(v[2] - v[3], used);
    assert_eq!(v[4], 3, "head, and two body extents");
    assert_eq!(v[7], 4, "three taken and one free");
    assert_eq!((v[8], v[9]), (0, 1));
    drop(r);
    drop(obj);
    c.purge(b"/f", 0.0);
    let v = counters(&*f);
    assert_eq!((v[4], v[5], v[6], v[7], v[9]), (0, 0, 1 << 20, 1, 1), "freed extents join again");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_full_file_store_evicts_its_own_objects_only() {
    let (f, dir) = file_store("f2", 64 * 1024, 4096);
    let m = Arc::new(storage::Malloc::new("m", None));
    let c: C = Cache::with_stores(vec![f.clone(), m.clone()]);
    let put = |key: &[u8], store: usize, len: usize| {
        let b = miss(&c, key, 100.0);
        let (_, obj) = b.publish_in(store, "h", 10, 1, life(60.0, 0.0), Some(Vec::new())).map_err(|(_, e)| e).unwrap();
        obj.append(vec![b'y'; len]).unwrap();
        obj.finish(true);
    };
    put(b"/m", 1, 40_000);
    for i in 0..3u8 {
        put(&[b'/', b'0' + i], 0, 20_000);
    }
    assert_eq!(c.stats().n_lru_nuked.load(Ordering::Relaxed), 1, "64k holds two 24k objects");
    assert!(matches!(c.lookup(b"/0", &want(101.0)), Lookup::Miss(..)));
    assert!(matches!(c.lookup(b"/2", &want(101.0)), Lookup::Hit(_)));
    assert!(matches!(c.lookup(b"/m", &want(101.0)), Lookup::Hit(_)), "the other store kept its object");
    assert!(f.used() <= 64 * 1024);
    // Bigger than the whole file: refused, and counted as failures.
    let b = miss(&c, b"/big", 100.0);
    let (_, obj) = b.publish_in(0, "h", 10, 1, life(60.0, 0.0), Some(Vec::new())).map_err(|(_, e)| e).unwrap();
    assert_eq!(obj.append(vec![0; 100_000]), Err(NoSpace));
    assert!(counters(&*f)[1] > 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bodies_take_room_by_the_chunk_and_give_back_what_they_did_not_use() {
    let c: C = Cache::new(Some(1 << 20));
    let b = miss(&c, b"/c", 100.0);
    let (_, obj) = b.publish("h", 10, 1, life(60.0, 0.0), Some(Vec::new())).unwrap();
    obj.append(vec![1; 4096]).unwrap();
    assert_eq!(c.store().used(), 10 + OBJECT_OVERHEAD + object::CHUNK, "a whole chunk while open");
    obj.finish(true);
    assert_eq!(c.store().used(), 10 + OBJECT_OVERHEAD + 4096, "trimmed when whole");
    let v = c.store().storage().counters();
    assert_eq!((v[0], v[4]), (2, 2), "two allocations asked, two held");
}
