//! The store's rules, against a real log in a temp directory.

use super::*;
use crate::testutil::TempDir;

fn test_options() -> Options {
    Options { mode: wal::SyncMode::Interval, boot: [7; 16] }
}

/// Sets and deletes come back after reopening, in the order they were made.
#[test]
fn reopen_replays_sets_and_deletes() {
    let dir = TempDir::new("replay");
    {
        let (mut store, rec) = Store::open(&dir, test_options()).unwrap();
        assert!(rec.created);
        assert_eq!(store.set(b"a", b"1").unwrap(), (1, true));
        assert_eq!(store.set(b"a", b"2").unwrap(), (2, false));
        store.set(b"b", b"x").unwrap();
        assert_eq!(store.delete(b"b").unwrap(), Deleted::Yes(4));
        assert_eq!(store.delete(b"b").unwrap(), Deleted::No { pending: Some(4) });
        store.settle().unwrap();
        assert_eq!(store.delete(b"b").unwrap(), Deleted::No { pending: None });
    }
    let (store, rec) = Store::open(&dir, test_options()).unwrap();
    assert_eq!((rec.records, rec.last_seq, rec.created), (4, 4, false));
    assert_eq!(store.get(b"a"), Some(&b"2"[..]));
    assert_eq!(store.get(b"b"), None);
    assert_eq!(store.len(), 1);
}

/// A second store on the same directory is refused while the first holds it; the lock is
/// seen without taking it (`/proc/locks`), and not seen once it is released.
#[test]
fn second_open_is_refused_while_locked() {
    let dir = TempDir::new("lock");
    assert!(!is_held(&dir).unwrap(), "no lock file yet");
    drop(Store::open(&dir, test_options()).unwrap());
    assert!(!is_held(&dir).unwrap() && !is_locked(&dir).unwrap(), "released");
    let (_first, _) = Store::open(&dir, test_options()).unwrap();
    assert!(is_held(&dir).unwrap() && is_locked(&dir).unwrap());
    assert!(!crate::wal::lock::names_inode(
        "1: FLOCK  ADVISORY  WRITE 7 08:01:12 0 EOF",
        0x801,
        13
    ));
    assert!(crate::wal::lock::names_inode("1: FLOCK  ADVISORY  WRITE 7 08:01:12 0 EOF", 0x801, 12));
    assert!(crate::wal::lock::names_inode(
        "2: -> FLOCK  ADVISORY  WRITE 7 103:02:12 0 EOF",
        (0x103 << 8) | 2,
        12
    ));
    match Store::open(&dir, test_options()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

/// Limits are enforced before anything is written, and a refused write changes nothing.
#[test]
fn oversized_writes_are_refused_and_change_nothing() {
    let dir = TempDir::new("limits");
    let (mut store, _) = Store::open(&dir, test_options()).unwrap();
    let big = vec![0u8; wal::MAX_VALUE_LEN + 1];
    assert!(matches!(store.set(b"k", &big), Err(Error::TooLarge(_))));
    assert!(matches!(store.set(b"", b"v"), Err(Error::Invalid(_))));
    store.settle().unwrap();
    assert!(store.is_empty());
    assert_eq!(store.set(b"k", b"v").unwrap().0, 1);
}

/// The one-allocation entries behave like a `HashMap<Vec<u8>, Vec<u8>>` (the oracle) under
/// random sets, deletes and gets, keys of every length up to the maximum included.
#[test]
fn entries_behave_like_a_plain_map() {
    let dir = TempDir::new("store-oracle");
    let (mut store, _) = Store::open(&dir, test_options()).unwrap();
    let mut oracle = std::collections::HashMap::new();
    let mut rng = crate::testutil::Rng::new(3);
    let keys: Vec<Vec<u8>> = [1, 2, 255, 256, 257, 4095, wal::MAX_KEY_LEN]
        .iter()
        .map(|&n| rng.bytes(n))
        .chain((0..20).map(|i| vec![i as u8]))
        .collect();
    for _ in 0..3000 {
        let key = &keys[rng.below(keys.len())];
        match rng.below(3) {
            0 => {
                let len = rng.below(300);
                let value = rng.bytes(len);
                let created = store.set(key, &value).unwrap().1;
                assert_eq!(created, oracle.insert(key.clone(), value).is_none());
            }
            1 => {
                let deleted = matches!(store.delete(key).unwrap(), Deleted::Yes(_));
                assert_eq!(deleted, oracle.remove(key).is_some());
            }
            _ => {
                store.settle().unwrap();
                assert_eq!(store.get(key), oracle.get(key).map(Vec::as_slice));
                assert_eq!(store.len(), oracle.len());
            }
        }
    }
    store.settle().unwrap();
    drop(store);
    let (store, _) = Store::open(&dir, test_options()).unwrap();
    for key in &keys {
        assert_eq!(store.get(key), oracle.get(key).map(Vec::as_slice), "after replay");
    }
}

/// A read sees a write only once the log has it, a write is checked against the newest
/// state, and writes that fail to reach the log never reach the map: the seq is given again.
#[test]
fn reads_see_only_what_the_log_has() {
    let dir = TempDir::new("store-visible");
    let (mut store, _) = Store::open(&dir, test_options()).unwrap();
    assert_eq!(store.set(b"k", b"1").unwrap(), (1, true));
    assert_eq!(store.get(b"k"), None, "not before the writer says it is written");
    assert_eq!(store.latest(b"k"), Latest { etag: Some(1), pending: Some(1) });
    assert_eq!(store.set(b"k", b"2").unwrap(), (2, false), "the second write sees the first");
    store.settle().unwrap();
    assert_eq!(store.get_versioned(b"k"), Some((&b"2"[..], 2)));
    assert_eq!(store.latest(b"k"), Latest { etag: Some(2), pending: None });
    assert_eq!((store.written_seq(), store.visible_seq(), store.queued()), (2, 2, (0, 0)));
    assert_eq!(store.sync().unwrap(), 2);
}

/// In `always` mode the map shows a write only once it is fsynced.
#[test]
fn always_mode_shows_writes_after_their_fsync() {
    let dir = TempDir::new("store-always");
    let options = Options { mode: wal::SyncMode::Always, boot: [7; 16] };
    let (mut store, _) = Store::open(&dir, options).unwrap();
    store.set(b"k", b"v").unwrap();
    store.settle().unwrap();
    assert_eq!(store.get(b"k"), Some(&b"v"[..]));
    assert!(store.synced_seq() >= 1, "visible in always mode means fsynced");
    assert_eq!(store.close().unwrap(), 1);
}

/// With `--max-memory`, a SET that needs more memory than the limit leaves is refused (507 in
/// the API), and nothing is written; replacing a value by one no bigger, and deleting, go on,
/// and a delete makes room again.
#[test]
fn the_memory_limit_refuses_writes_that_need_more() {
    let dir = TempDir::new("store-memory");
    let tuning = Tuning { max_memory: Some(4096), ..Tuning::default() };
    let (mut store, _, _) = Store::open_dir_while(&dir, test_options(), tuning, || {}).unwrap();
    let value = [b'v'; 500];
    let mut written = 0;
    let refused = loop {
        match store.set(format!("k{written}").as_bytes(), &value) {
            Ok(_) => written += 1,
            Err(e) => break e,
        }
        store.settle().unwrap(); // a write on its way counts its record too
        assert!(written < 100, "never refused");
    };
    assert!(matches!(refused, Error::MemoryFull { limit: 4096, .. }), "{refused:?}");
    assert!(refused.to_string().contains("--max-memory 4.0 KiB"), "{refused}");
    store.settle().unwrap();
    let (used, limit) = store.memory();
    assert!(used <= 4096 && limit == Some(4096), "{used} of {limit:?}");
    assert_eq!(store.len(), written, "the refused write wrote nothing");
    assert!(store.set(b"k0", &value[..100]).is_ok(), "a smaller value needs no more memory");
    store.settle().unwrap();
    assert!(store.set(b"new", &value).is_err(), "still full");
    assert!(matches!(store.delete(b"k1").unwrap(), Deleted::Yes(_)));
    store.settle().unwrap();
    assert!(store.set(b"new", &value).is_ok(), "a delete made room");
}

/// The sweep gives expired keys EXPIRE records (and nothing else), in slices of at most 500;
/// a key written again before the slice is left to that write; the map and the index of
/// expiring keys empty out, and a reopen agrees.
#[test]
fn the_sweep_expires_what_is_due_and_nothing_else() {
    let dir = TempDir::new("sweep");
    let (mut store, _) = Store::open(&dir, test_options()).unwrap();
    // Expiries a second in the past: the keys are expired by the clock reads use, and a sweep
    // at `now - 2000` finds nothing due yet.
    let now = crate::expiry::now_ms();
    for i in 0..1200 {
        store.set_with_ttl(format!("k{i}").as_bytes(), b"v", Ttl::At(now - 1000)).unwrap();
    }
    store.set_with_ttl(b"later", b"v", Ttl::At(now + 3_600_000)).unwrap();
    store.set(b"plain", b"v").unwrap();
    store.settle().unwrap();
    assert_eq!(store.sweep(now - 2000), Swept { expired: 0, more: false }, "nothing due yet");
    assert_eq!(store.expiring_keys(), 1201);
    store.set(b"k0", b"again").unwrap(); // written again, without a TTL, before the sweep
    let first = store.sweep(now);
    assert!(first.expired <= 500 && first.more, "{first:?}");
    assert_eq!(store.get(b"k1"), None, "expired keys are not served before the sweep");
    let mut total = first.expired;
    for _ in 0..100 {
        store.settle().unwrap();
        let swept = store.sweep(now);
        total += swept.expired;
        if !swept.more {
            break;
        }
    }
    store.settle().unwrap();
    assert_eq!(total, 1199, "every expired key once, k0 left to its new write");
    assert_eq!(store.expired_total(), 1199);
    assert_eq!((store.len(), store.expiring_keys()), (3, 1), "k0, later, plain");
    assert_eq!(store.get(b"k0"), Some(&b"again"[..]));
    drop(store);
    let (store, rec) = Store::open(&dir, test_options()).unwrap();
    assert_eq!((store.len(), store.expiring_keys()), (3, 1));
    assert_eq!(rec.last_seq, 1203 + 1199);
}

/// A transaction checks every condition against the newest state, pending writes included,
/// and writes nothing if one fails; its keys share its seq; an increment counts from the
/// newest value and keeps the TTL.
#[test]
fn transactions_and_increments_see_the_newest_state() {
    use txn::{Condition, Operation, Outcome};
    let dir = TempDir::new("txn-store");
    let (mut store, _) = Store::open(&dir, test_options()).unwrap();
    let (seq, _) = store.set(b"a", b"1").unwrap(); // pending, not yet in the map
    let set =
        |k: &[u8], v: &[u8]| Operation::Set { key: k.to_vec(), value: v.to_vec(), ttl: Ttl::Clear };
    let failed = store.txn(&[(b"a".to_vec(), Condition::Absent)], &[set(b"b", b"2")]).unwrap();
    let current = Latest { etag: Some(seq), pending: Some(seq) };
    assert_eq!(failed, Outcome::Failed { index: 0, current });
    assert_eq!(store.last_issued(), seq, "a failed transaction writes nothing");
    let conditions = [(b"a".to_vec(), Condition::Etag(seq)), (b"b".to_vec(), Condition::Absent)];
    let then = [set(b"b", b"2"), Operation::Delete { key: b"a".to_vec() }, set(b"c", b"3")];
    let Outcome::Done(txn_seq) = store.txn(&conditions, &then).unwrap() else { panic!() };
    assert_eq!(store.latest(b"a").etag, None, "deleted in the newest state");
    assert_eq!(store.latest(b"c").etag, Some(txn_seq));
    store.settle().unwrap();
    assert_eq!(store.get_versioned(b"b"), Some((&b"2"[..], txn_seq)));
    assert_eq!(store.get(b"a"), None);
    let now = crate::expiry::now_ms();
    store.set_with_ttl(b"n", b"41", Ttl::At(now + 60_000)).unwrap();
    let counted = store.incr(b"n", 1).unwrap(); // counts from the pending 41
    assert!(matches!(counted, counter::Counted::Done { value: 42, .. }), "{counted:?}");
    store.settle().unwrap();
    assert_eq!(
        store.get_expiring(b"n").map(|(v, _, e)| (v, e)),
        Some((&b"42"[..], Some(now + 60_000)))
    );
    store.set(b"name", b"Ada").unwrap();
    let refused = store.incr(b"name", 1).unwrap();
    assert!(matches!(refused, counter::Counted::Refused { .. }), "{refused:?}");
}
