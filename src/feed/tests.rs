//! The ring's rules, without a server: what a follower is told to take, and when it fell
//! behind.

use super::*;
use crate::wal::{Body, Op, record::TxnBuilder};
use std::time::Instant;

fn lines(seqs: std::ops::RangeInclusive<u64>) -> Vec<Line> {
    seqs.map(|seq| Line::new(seq, &Op::Set.body(format!("k{seq}").as_bytes(), b"v"))).collect()
}

/// Every key, without a byte budget.
const ALL: Take = Take { prefix: b"", budget: usize::MAX };

fn seqs(lines: &[Line]) -> Vec<u64> {
    lines.iter().map(Line::seq).collect()
}

/// Lines published while followed are taken from the ring; what came before, or while
/// nobody followed, is to be read from the files; a bound and a prefix are kept.
#[test]
fn a_follower_is_told_where_each_change_is() {
    let dir = crate::testutil::TempDir::new("feed");
    let feed = Feed::new(&dir, 0, DEFAULT_CAPACITY);
    feed.serve_from(10);
    feed.made_visible(10, 12, None); // nobody follows: no lines
    let following = feed.follow();
    assert!(feed.is_followed());
    let mut out = Vec::new();
    assert_eq!(feed.take(0, 12, &ALL, &mut out), Taken::FromFiles { upto: 10 });
    assert_eq!(feed.take(10, 12, &ALL, &mut out), Taken::FromFiles { upto: 12 }, "the gap");
    feed.made_visible(12, 15, Some(lines(13..=15)));
    assert_eq!(feed.take(0, 15, &ALL, &mut out), Taken::FromFiles { upto: 12 });
    assert_eq!(feed.take(12, 14, &ALL, &mut out), Taken::Lines { upto: 14 });
    assert_eq!(seqs(&out), [13, 14]);
    out.clear();
    assert_eq!(
        feed.take(13, 15, &Take { prefix: b"k15", budget: 1 }, &mut out),
        Taken::Lines { upto: 15 }
    );
    assert_eq!(seqs(&out), [15]);
    assert_eq!(feed.take(15, 15, &ALL, &mut out), Taken::Nothing);
    assert_eq!((feed.visible(), feed.followers()), (15, 1));
    drop(following);
    assert_eq!(feed.followers(), 0);
    feed.made_visible(15, 16, None);
    assert_eq!(feed.lock().lines.len(), 0, "the last follower left: the ring is emptied");
}

/// The ring keeps at most its capacity; a live follower whose next change was dropped is cut,
/// one reading the files is not.
#[test]
fn a_follower_past_the_capacity_is_cut() {
    let dir = crate::testutil::TempDir::new("feed-cut");
    let one = lines(1..=1)[0].len();
    let feed = Feed::new(&dir, 0, 3 * one);
    feed.serve_from(0);
    let _following = feed.follow();
    feed.made_visible(0, 5, Some(lines(1..=5)));
    let mut out = Vec::new();
    assert_eq!(feed.take(0, 5, &ALL, &mut out), Taken::FromFiles { upto: 2 });
    assert_eq!(feed.recent(0).take_live(1, 5, &ALL, &mut out), Taken::FellBehind);
    assert_eq!(feed.cut_count(), 1);
    assert_eq!(feed.recent(2).take_live(2, 5, &ALL, &mut out), Taken::Lines { upto: 5 });
    assert_eq!(seqs(&out), [3, 4, 5]);
    out.clear();
    let copy = feed.recent(4);
    assert_eq!(copy.take_live(2, 5, &ALL, &mut out), Taken::Lines { upto: 5 }, "behind the copy");
    assert_eq!(seqs(&out), [3, 4, 5], "served from the ring itself, nothing skipped");
}

/// The byte budget stops a take after the line that reaches it, and says how far it looked.
#[test]
fn a_take_stops_at_its_budget() {
    let dir = crate::testutil::TempDir::new("feed-budget");
    let feed = Feed::new(&dir, 0, DEFAULT_CAPACITY);
    feed.serve_from(0);
    let _following = feed.follow();
    feed.made_visible(0, 5, Some(lines(1..=5)));
    let one = lines(1..=1)[0].json().len();
    let mut out = Vec::new();
    let take = Take { prefix: b"", budget: 2 * one };
    assert_eq!(feed.take(0, 5, &take, &mut out), Taken::Lines { upto: 2 });
    assert_eq!(seqs(&out), [1, 2]);
}

/// The thread that writes to followers waits for news: a publication, a higher synced seq,
/// a nudge or the close; without news it waits its timeout.
#[test]
fn news_rings_the_bell() {
    let dir = crate::testutil::TempDir::new("feed-bell");
    let feed = Feed::new(&dir, 0, DEFAULT_CAPACITY);
    feed.serve_from(0);
    let started = Instant::now();
    assert!(!feed.wait_for_news(Duration::from_millis(50)), "nothing new: the timeout");
    assert!(started.elapsed() >= Duration::from_millis(50));
    feed.made_visible(0, 1, None);
    assert!(!feed.wait_for_news(Duration::ZERO), "nobody follows: no bell");
    let _following = feed.follow();
    feed.made_visible(1, 2, Some(lines(2..=2)));
    assert!(feed.wait_for_news(Duration::ZERO));
    assert!(!feed.wait_for_news(Duration::ZERO), "rung once, taken once");
    feed.made_synced(2);
    assert!(feed.wait_for_news(Duration::ZERO));
    feed.nudge();
    assert!(feed.wait_for_news(Duration::ZERO));
    feed.close();
    assert!(feed.wait_for_news(Duration::ZERO) && feed.is_closed());
}

/// Lines are the JSON the feed promises, parsed back by serde_json to the same bytes.
#[test]
fn lines_are_json() {
    let set = Line::new(7, &Op::Set.body(b"cat", b"meow"));
    assert_eq!(set.json(), b"{\"seq\":7,\"op\":\"set\",\"key\":\"cat\",\"value\":\"meow\"}\n");
    assert_eq!((set.seq(), set.keys().collect::<Vec<_>>()), (7, vec![&b"cat"[..]]));
    let delete = Line::new(8, &Op::Delete.body(b"\xff", b""));
    assert_eq!(delete.json(), b"{\"seq\":8,\"op\":\"delete\",\"key_base64\":\"/w==\"}\n");
    let expiring = Line::new(9, &Body::Set { key: b"s", value: b"1", expires: Some(1234) });
    assert_eq!(
        expiring.json(),
        &b"{\"seq\":9,\"op\":\"set\",\"key\":\"s\",\"value\":\"1\",\"expires\":1234}\n"[..]
    );
    let expire = Line::new(10, &Body::Expire { key: b"s" });
    assert_eq!(expire.json(), b"{\"seq\":10,\"op\":\"expire\",\"key\":\"s\"}\n");
    let mut txn = TxnBuilder::default();
    txn.push(&Op::Set.body(b"ab", b"1"));
    txn.push(&Op::Delete.body(b"cd", b""));
    let line = Line::new(11, &Body::Txn(txn.txn()));
    let want = "{\"seq\":11,\"op\":\"txn\",\"ops\":[{\"op\":\"set\",\"key\":\"ab\",\"value\":\"1\"},\
                {\"op\":\"delete\",\"key\":\"cd\"}]}\n";
    assert_eq!(String::from_utf8_lossy(line.json()), want);
    assert!(line.matches(b"c") && line.matches(b"a") && line.matches(b"") && !line.matches(b"b"));
    let _: serde_json::Value = serde_json::from_slice(line.json()).unwrap();
    let mut rng = crate::testutil::Rng::new(29);
    for seq in 0..2000 {
        let (klen, vlen) = (1 + rng.below(10), rng.below(10));
        let (key, value) = (rng.bytes(klen), rng.bytes(vlen));
        let line = Line::new(seq, &Op::Set.body(&key, &value));
        assert_eq!(line.keys().collect::<Vec<_>>(), vec![&key[..]]);
        let parsed: serde_json::Value = serde_json::from_slice(line.json()).unwrap();
        assert_eq!(parsed["seq"], seq);
        let bytes = |name: &str| match (parsed.get(name), parsed.get(format!("{name}_base64"))) {
            (Some(s), None) => s.as_str().unwrap().as_bytes().to_vec(),
            (None, Some(b)) => crate::base64::decode(b.as_str().unwrap().as_bytes()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!((bytes("key"), bytes("value")), (key, value));
    }
}
