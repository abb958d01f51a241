//! The body of a transaction record (type 7): the SETs and DELETEs that happen together, under
//! the record's one seq (the layout is specified in `docs/log-format.md`).
//!
//! ```text
//! body := op+
//! op   := type[1] klen[4] vlen[4] key[klen] value[vlen]
//!         type 1 SET, 2 DELETE (vlen 0), 5 expiring SET (value = expiry[8] then the value)
//! ```
//!
//! A transaction is one record so that a crash, a torn write or a repair can only keep all of
//! it or none of it: the record's checksum covers every operation. [`Txn::checked`] walks the
//! whole body once when the record is decoded, so that [`Txn::ops`] never meets a bad length.

use super::{Body, EXPIRY_LEN, MAX_KEY_LEN, MAX_TXN_LEN, MAX_VALUE_LEN, u32_at, u64_at};

const OP_SET: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_SET_EXPIRING: u8 = 5;
/// Bytes before an operation's key: type, key length, value length.
const OP_HEADER_LEN: usize = 1 + 4 + 4;

/// The operations of a transaction record, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Txn<'a>(&'a [u8]);

impl<'a> Txn<'a> {
    /// `body` as a transaction, or the offset of its first operation that does not decode.
    pub fn checked(body: &'a [u8]) -> Result<Txn<'a>, usize> {
        if body.is_empty() {
            return Err(0);
        }
        let mut at = 0;
        while at < body.len() {
            at = next_op(body, at).ok_or(at)?.1;
        }
        Ok(Txn(body))
    }

    /// The encoded operations: the record's value.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The operations in order, each as a [`Body::Set`] or a [`Body::Delete`].
    pub fn ops(&self) -> impl Iterator<Item = Body<'a>> + 'a {
        let body = self.0;
        let mut at = 0;
        std::iter::from_fn(move || {
            let (op, next) = next_op(body, at)?;
            at = next;
            Some(op)
        })
    }

    /// How many operations it holds.
    pub fn len(&self) -> usize {
        self.ops().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The operation at `at` in `body` and where the next one starts; `None` if it does not decode
/// (or `at` is the end).
fn next_op(body: &[u8], at: usize) -> Option<(Body<'_>, usize)> {
    let head = body.get(at..at.checked_add(OP_HEADER_LEN)?)?;
    let klen = u32_at(head, 1) as usize;
    let vlen = u32_at(head, 5) as usize;
    if klen == 0 || klen > MAX_KEY_LEN {
        return None;
    }
    let value_fits = match head[0] {
        OP_SET => vlen <= MAX_VALUE_LEN,
        OP_DELETE => vlen == 0,
        OP_SET_EXPIRING => (EXPIRY_LEN..=EXPIRY_LEN + MAX_VALUE_LEN).contains(&vlen),
        _ => false,
    };
    if !value_fits {
        return None;
    }
    let start = at + OP_HEADER_LEN;
    let end = start + klen + vlen; // lengths checked above: no overflow
    let rest = body.get(start..end)?;
    let (key, value) = rest.split_at(klen);
    let op = match head[0] {
        OP_SET => Body::Set { key, value, expires: None },
        OP_DELETE => Body::Delete { key },
        _ => {
            let (expiry, value) = value.split_at(EXPIRY_LEN);
            Body::Set { key, value, expires: Some(u64_at(expiry, 0)) }
        }
    };
    Some((op, end))
}

/// Builds the body of a transaction record, one operation at a time.
#[derive(Debug, Default, Clone)]
pub struct TxnBuilder {
    bytes: Vec<u8>,
}

impl TxnBuilder {
    /// Bytes a SET or DELETE takes in the body, beyond its key and value.
    pub const OVERHEAD: usize = OP_HEADER_LEN + EXPIRY_LEN;

    /// Adds a SET (with or without an expiry) or a DELETE. Lengths must be within the format's
    /// limits, and the body must stay within [`MAX_TXN_LEN`].
    ///
    /// # Panics
    /// On any other body, or lengths past the limits: the caller checks them first.
    pub fn push(&mut self, op: &Body) {
        let (kind, key, expiry, value) = match *op {
            Body::Set { key, value, expires: None } => (OP_SET, key, None, value),
            Body::Set { key, value, expires: Some(at) } => {
                (OP_SET_EXPIRING, key, Some(at.to_le_bytes()), value)
            }
            Body::Delete { key } => (OP_DELETE, key, None, &b""[..]),
            _ => panic!("a transaction holds SETs and DELETEs, not {op:?}"),
        };
        assert!(
            (1..=MAX_KEY_LEN).contains(&key.len()) && value.len() <= MAX_VALUE_LEN,
            "lengths are checked before a transaction is built"
        );
        let vlen = value.len() + expiry.map_or(0, |e| e.len());
        self.bytes.push(kind);
        self.bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&(vlen as u32).to_le_bytes());
        self.bytes.extend_from_slice(key);
        if let Some(expiry) = &expiry {
            self.bytes.extend_from_slice(expiry);
        }
        self.bytes.extend_from_slice(value);
        assert!(self.bytes.len() <= MAX_TXN_LEN, "a transaction's size is checked first");
    }

    /// The body's length so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The finished body.
    pub fn txn(&self) -> Txn<'_> {
        Txn(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is pushed comes back out in order; a body cut anywhere but between two operations,
    /// or with any one byte changed, is refused or decodes without panicking.
    #[test]
    fn operations_round_trip_and_damage_is_caught() {
        let mut b = TxnBuilder::default();
        let ops = [
            Body::Set { key: b"a", value: b"1", expires: None },
            Body::Delete { key: b"b" },
            Body::Set { key: b"c", value: b"", expires: Some(1_800_000_000_000) },
        ];
        for op in &ops {
            b.push(op);
        }
        let body = b.txn().bytes().to_vec();
        let txn = Txn::checked(&body).unwrap();
        assert_eq!(txn.ops().collect::<Vec<_>>(), ops);
        assert_eq!(txn.len(), 3);
        let ends = [11, 21]; // after the first operation (9 + 1 + 1 bytes), the second (9 + 1)
        for cut in 0..body.len() {
            match Txn::checked(&body[..cut]) {
                Ok(txn) => assert!(ends.contains(&cut), "cut at {cut} taken: {txn:?}"),
                Err(_) => assert!(!ends.contains(&cut), "cut at {cut} refused"),
            }
        }
        for at in 0..body.len() {
            for v in [0u8, 3, 0xff] {
                let mut bad = body.clone();
                bad[at] = v;
                if let Ok(txn) = Txn::checked(&bad) {
                    let _ = txn.ops().count();
                }
            }
        }
        assert_eq!(Txn::checked(&[]), Err(0), "an empty transaction is not a transaction");
    }
}
