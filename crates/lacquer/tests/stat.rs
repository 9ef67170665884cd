//! `lacquer stat` against counters this test writes itself (the test is the
//! server's side, through `lacquer_shm::Vsc`), read by the real binary in
//! another process. The expected texts are varnishstat 7.1's formats.

use std::path::{Path, PathBuf};
use std::process::Command;

use lacquer_shm::Vsc;

struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("lacquer-stat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

fn stat(dir: &Path, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .arg("stat")
        .arg("-n")
        .arg(dir)
        .args(args)
        .output()
        .expect("lacquer runs");
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap(), out.status.success())
}

/// A server's worth of counters: MAIN, two stores, a backend.
fn server(dir: &Path) -> (Vsc, lacquer_shm::vsc::Main, lacquer_shm::vsc::Sma, lacquer_shm::vsc::Vbe) {
    let vsc = Vsc::create(dir).unwrap();
    let main = vsc.main().unwrap();
    let s0 = vsc.sma("s0").unwrap();
    let be = vsc.vbe("boot", "default").unwrap();
    main.uptime.set(4);
    main.sess_conn.add(2);
    for _ in 0..6 {
        main.client_req.inc();
    }
    main.cache_hit.add(5);
    main.cache_miss.inc();
    main.n_object.inc();
    main.s_resp_bodybytes.add(123_456_789);
    s0.c_req.inc();
    s0.g_space.set(104_857_600);
    be.happy.set(u64::MAX);
    be.req.inc();
    (vsc, main, s0, be)
}

#[test]
fn one_shot_text_as_varnishstat_prints_it() {
    let d = tmpdir("once");
    let _s = server(&d.0);
    let (out, err, ok) = stat(&d.0, &["-1", "-f", "MAIN.uptime", "-f", "MAIN.c*", "-f", "*.g_space", "-f", "VBE.*"]);
    assert!(ok, "{err}");
    let want = "\
MAIN.uptime                  4         1.00 Seconds since the server started
MAIN.client_req_400            0         0.00 Client requests refused as malformed (400)
MAIN.client_req_417            0         0.00 Client requests refused for their Expect header (417)
MAIN.client_req                6         1.50 Well-formed client requests received
MAIN.cache_hit                 5         1.25 Lookups that found a fresh object
MAIN.cache_hit_grace            0         0.00 Lookups that found a stale object within grace
MAIN.cache_hitpass              0         0.00 Lookups that found a hit-for-pass object
MAIN.cache_hitmiss              0         0.00 Lookups that found a hit-for-miss object
MAIN.cache_miss                 1         0.25 Lookups that found nothing usable
MAIN.client_resp_500            0         0.00 Deliveries failed for lack of workspace
SMA.s0.g_space          104857600          .   Bytes still free
VBE.boot.default.happy 18446744073709551615          .   Recent probe results, newest in bit 0 (1: good)
VBE.boot.default.bereq_hdrbytes            0         0.00 Bytes of request headers sent
VBE.boot.default.bereq_bodybytes            0         0.00 Bytes of request bodies sent
";
    assert_eq!(&out[..want.len()], want);
    assert!(out.ends_with("VBE.boot.default.helddown                      0         0.00 Connections not tried during backend_remote_error_holddown\n"));
    assert_eq!(out.lines().count(), 10 + 1 + lacquer_defs::counters::VBE.len());
    // Without a filter: every counter of every segment, MAIN first.
    let (all, _, _) = stat(&d.0, &["-1"]);
    assert_eq!(all.lines().count(), 135 + 7 + 20);
    assert!(all.starts_with("MAIN.uptime                  4         1.00 Seconds since the server started\n"));
}

#[test]
fn json_as_varnishstat_prints_it() {
    let d = tmpdir("json");
    let _s = server(&d.0);
    let (out, err, ok) = stat(&d.0, &["-j", "-f", "MAIN.cache_hit", "-f", "MAIN.s_resp_bodybytes", "-f", "*happy"]);
    assert!(ok, "{err}");
    let (head, rest) = out.split_at(out.find("\"timestamp\": \"").unwrap() + 14);
    assert_eq!(head, "{\n  \"version\": 1,\n  \"timestamp\": \"");
    let rest = &rest[rest.find('"').unwrap()..];
    assert_eq!(
        rest,
        r#"",
  "counters": {
    "MAIN.cache_hit": {
      "description": "Lookups that found a fresh object",
      "flag": "c",
      "format": "i",
      "value": 5
    },
    "MAIN.s_resp_bodybytes": {
      "description": "Bytes of response bodies sent to clients",
      "flag": "c",
      "format": "B",
      "value": 123456789
    },
    "VBE.boot.default.happy": {
      "description": "Recent probe results, newest in bit 0 (1: good)",
      "flag": "b",
      "format": "b",
      "value": 18446744073709551615
    }
  }
}
"#
    );
}

#[test]
fn filters_exclude_and_first_match_decides() {
    let d = tmpdir("filter");
    let _s = server(&d.0);
    let names = |args: &[&str]| -> Vec<String> {
        let (out, err, ok) = stat(&d.0, args);
        assert!(ok, "{err}");
        out.lines().map(|l| l.split(' ').next().unwrap().to_string()).collect()
    };
    assert_eq!(
        names(&["-1", "-f", "^MAIN.*", "-f", "^VBE.*"]),
        [
            "SMA.s0.c_req",
            "SMA.s0.c_fail",
            "SMA.s0.c_bytes",
            "SMA.s0.c_freed",
            "SMA.s0.g_alloc",
            "SMA.s0.g_bytes",
            "SMA.s0.g_space"
        ]
    );
    // MAIN.s* but not MAIN.s_*: the sess_*, sc_* and shm_* counters.
    let want: Vec<String> = lacquer_defs::counters::MAIN
        .iter()
        .filter(|d| d.name.starts_with('s') && !d.name.starts_with("s_"))
        .map(|d| format!("MAIN.{}", d.name))
        .collect();
    assert_eq!(want.len(), 13 + 19 + 4);
    assert_eq!(names(&["-1", "-f", "^MAIN.s_*", "-f", "MAIN.s*"]), want);
    assert_eq!(names(&["-1", "-f", "MAIN.S_SESS"]), Vec::<String>::new());
}

#[test]
fn list_as_varnishstat_prints_it() {
    let d = tmpdir("list");
    let _s = server(&d.0);
    let (out, err, ok) = stat(&d.0, &["-l", "-f", "SMA.*", "-f", "VBE.*.fail"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Varnishstat -f option fields:
Field name                     Description
----------                     -----------
SMA.s0.c_req                   Allocations asked of this storage
SMA.s0.c_fail                  Allocations this storage could not give
SMA.s0.c_bytes                 Bytes ever allocated
SMA.s0.c_freed                 Bytes ever freed
SMA.s0.g_alloc                 Allocations held now
SMA.s0.g_bytes                 Bytes held now
SMA.s0.g_space                 Bytes still free
VBE.boot.default.fail          Connections that could not be opened
"
    );
}

#[test]
fn removed_segments_disappear_and_missing_counters_are_an_error() {
    let d = tmpdir("gone");
    let (vsc, main, s0, be) = server(&d.0);
    let module = vsc
        .segment(
            "KV",
            "store",
            &[lacquer_defs::counters::CounterDef {
                name: "hits",
                kind: lacquer_defs::counters::Kind::Counter,
                level: lacquer_defs::counters::Level::Info,
                unit: lacquer_defs::counters::Unit::Count,
                doc: "Keys found",
            }],
        )
        .unwrap();
    module.counter(0).add(3);
    let (out, _, _) = stat(&d.0, &["-1", "-f", "KV.*", "-f", "VBE.*.req"]);
    assert_eq!(
        out,
        "VBE.boot.default.req            1         0.25 Requests sent\nKV.store.hits                   3         0.75 Keys found\n"
    );
    drop(be);
    let (out, _, _) = stat(&d.0, &["-1", "-f", "KV.*", "-f", "VBE.*.req"]);
    assert_eq!(out, "KV.store.hits                3         0.75 Keys found\n");
    drop((main, s0, module, vsc));
    let empty = tmpdir("none");
    let (out, err, ok) = stat(&empty.0, &["-1", "-t", "0"]);
    assert!(!ok && out.is_empty());
    assert!(err.starts_with("Could not get hold of the counters in"), "{err}");
}
