//! Fenced writes: one etcd txn whose first compare is `create_revision(leader) == epoch`,
//! then the caller's compares (a key absent, a key unchanged since a revision), then
//! the writes. The failure branch reads the leader key and every compared key back, so a
//! refusal says which compare failed.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::{Etcd, Stored};
use crate::coord::error::{CoordError, Expect};
use crate::coord::keys::ServiceKeys;
use crate::coord::records::LeaderInfo;
use crate::core::ids::Epoch;

/// The right to write for one service: its keys and the epoch its leader key was
/// created at. Plain data, so a process that was paused still holds one; etcd decides
/// whether it is still good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub service: ServiceKeys,
    pub epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// The compares and writes of one fenced txn, built as data (and so assertable without
/// sending it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FencedWrite {
    expects: Vec<(String, Expect)>,
    ops: Vec<Op>,
}

impl FencedWrite {
    pub fn new() -> FencedWrite {
        FencedWrite::default()
    }

    /// A put under the fence alone (last writer wins among the epoch's own writes).
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> FencedWrite {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> FencedWrite {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }

    /// Adds a compare: the txn applies only if `key` is as expected.
    pub fn expect(mut self, key: impl Into<String>, expect: Expect) -> FencedWrite {
        self.expects.push((key.into(), expect));
        self
    }

    /// An append-once record: written only if the key has never been written (or was
    /// deleted), e.g. a step's intent or done record, or the current run.
    pub fn append_once(key: impl Into<String>, value: impl Into<Vec<u8>>) -> FencedWrite {
        let key = key.into();
        FencedWrite::new()
            .expect(key.clone(), Expect::Absent)
            .put(key, value)
    }

    /// Compare-and-set on `mod_revision` (`Expect::Absent` for a key not written yet).
    pub fn compare_and_set(
        key: impl Into<String>,
        expect: Expect,
        value: impl Into<Vec<u8>>,
    ) -> FencedWrite {
        let key = key.into();
        FencedWrite::new()
            .expect(key.clone(), expect)
            .put(key, value)
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.expects
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.ops.iter().map(|op| match op {
                Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
            }))
    }

    fn value_for(&self, key: &str) -> Option<&[u8]> {
        self.ops.iter().rev().find_map(|op| match op {
            Op::Put { key: k, value } if k == key => Some(value.as_slice()),
            _ => None,
        })
    }

    fn txn(&self, fence: &Fence) -> Txn {
        let epoch = i64::try_from(fence.epoch.0).unwrap_or(i64::MAX);
        let leader = fence.service.leader();
        let mut compares = vec![Compare::create_revision(
            leader.clone(),
            CompareOp::Equal,
            epoch,
        )];
        for (key, expect) in &self.expects {
            compares.push(match expect {
                // etcd compares a missing key's revisions as 0.
                Expect::Absent => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Expect::ModRevision(r) => Compare::mod_revision(key.clone(), CompareOp::Equal, *r),
            });
        }
        let ops: Vec<TxnOp> = self
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(key.clone(), value.clone(), None),
                Op::Delete { key } => TxnOp::delete(key.clone(), None),
            })
            .collect();
        let mut reads = vec![TxnOp::get(leader, None)];
        reads.extend(
            self.expects
                .iter()
                .map(|(k, _)| TxnOp::get(k.clone(), None)),
        );
        Txn::new().when(compares).and_then(ops).or_else(reads)
    }

    /// Why the txn was refused, from the failure branch's reads.
    fn refusal(&self, fence: &Fence, reads: &[Option<Stored>]) -> CoordError {
        let leader = reads.first().cloned().flatten();
        if leader.as_ref().map(|l| l.create_revision) != i64::try_from(fence.epoch.0).ok() {
            return CoordError::Deposed {
                service: fence.service.service().to_string(),
                ours: fence.epoch,
                current: leader.and_then(|l| leader_info(&l).ok()),
            };
        }
        for ((key, expect), found) in self.expects.iter().zip(reads.iter().skip(1)) {
            let holds = match (expect, found) {
                (Expect::Absent, None) => true,
                (Expect::ModRevision(r), Some(s)) => s.mod_revision == *r,
                _ => false,
            };
            if !holds {
                return CoordError::Conflict {
                    key: key.clone(),
                    expected: *expect,
                    found: found.as_ref().map(|s| s.mod_revision),
                    same_value: found
                        .as_ref()
                        .is_some_and(|s| self.value_for(key) == Some(s.value.as_slice())),
                };
            }
        }
        // Every compare held when read back, so the state changed between the txn's
        // evaluation and its reads; impossible within one txn, reported rather than hidden.
        CoordError::Decode {
            key: fence.service.leader(),
            detail: "a fenced txn failed although its compares held".to_string(),
        }
    }
}

/// Reads a leader key's value and epoch.
pub(super) fn leader_info(s: &Stored) -> Result<LeaderInfo, CoordError> {
    let c: crate::coord::records::Candidate = s.json()?;
    Ok(LeaderInfo {
        node: c.node,
        region: c.region,
        epoch: Epoch(u64::try_from(s.create_revision).unwrap_or(0)),
    })
}

impl Etcd {
    /// Applies `write` if `fence` still holds, i.e. the service's leader key still has
    /// the fence's `create_revision`, and every expected key is as expected.
    ///
    /// Guarantees: applied atomically or not at all, evaluated when raft applies it, so a
    /// late request from a paused or partitioned leader is refused.
    /// Returns: the revision the write created.
    /// Errors: `Deposed` (stop acting), `Conflict` (re-read), `OutsideService` (a key not
    /// under the fence's service), `Unavailable` (outcome unknown: re-read).
    pub async fn fenced(&self, fence: &Fence, write: &FencedWrite) -> Result<i64, CoordError> {
        if let Some(key) = write.keys().find(|k| !fence.service.owns(k)) {
            return Err(CoordError::OutsideService {
                service: fence.service.service().to_string(),
                key: key.to_string(),
            });
        }
        let txn = write.txn(fence);
        let resp = self
            .pool
            .call("fenced txn", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let reads: Vec<Option<Stored>> = resp
            .op_responses()
            .iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(Stored::from_kv),
                _ => None,
            })
            .collect();
        Err(write.refusal(fence, &reads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coord::keys::Keys;

    fn fence() -> Fence {
        Fence {
            service: Keys::new("t").expect("keys").service("svc").expect("svc"),
            epoch: Epoch(42),
        }
    }

    fn stored(key: &str, value: &[u8], create: i64, modified: i64) -> Option<Stored> {
        Some(Stored {
            key: key.to_string(),
            value: value.to_vec(),
            create_revision: create,
            mod_revision: modified,
            lease: 0,
        })
    }

    #[test]
    fn a_refusal_names_the_compare_that_failed() {
        let f = fence();
        let step = f.service.step_done("run-1", 1).expect("key");
        let w = FencedWrite::append_once(step.clone(), b"done".to_vec());
        let leader = r#"{"node":"b","region":"eu-west-1"}"#.as_bytes();
        let deposed = w.refusal(&f, &[stored(&f.service.leader(), leader, 50, 50), None]);
        match deposed {
            CoordError::Deposed { ours, current, .. } => {
                assert_eq!(ours, Epoch(42));
                assert_eq!(current.expect("leader").epoch, Epoch(50));
            }
            other => panic!("expected Deposed, got {other:?}"),
        }
        assert!(matches!(
            w.refusal(&f, &[None, None]),
            CoordError::Deposed { current: None, .. }
        ));
        let ours = stored(&f.service.leader(), leader, 42, 42);
        match w.refusal(&f, &[ours.clone(), stored(&step, b"done", 60, 60)]) {
            CoordError::Conflict {
                key,
                found,
                same_value,
                ..
            } => {
                assert_eq!(key, step);
                assert_eq!(found, Some(60));
                assert!(
                    same_value,
                    "the record holds what this write would have put"
                );
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        match w.refusal(&f, &[ours, stored(&step, b"other", 60, 60)]) {
            CoordError::Conflict { same_value, .. } => assert!(!same_value),
            other => panic!("expected Conflict, got {other:?}"),
        }
    }
}
