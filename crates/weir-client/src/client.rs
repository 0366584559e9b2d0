//! [`Client`]: the requests of the control device as methods, over any [`Transport`].

use crate::error::ClientError;
use crate::proto::{self, ActivePolicy, Completion, Reply, Request, Stats};
use weir_abi::policy::SetPolicyReply;
use weir_policy::{wire, Policy};

/// Carries one request to the driver and back.
pub trait Transport {
    /// Sends `request` and blocks until it completes (a pended request included). Errors
    /// only when the request could not be issued; the driver's own statuses come back in
    /// [`Completion::status`].
    fn call(&self, request: &Request) -> Result<Completion, ClientError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn call(&self, request: &Request) -> Result<Completion, ClientError> {
        (**self).call(request)
    }
}

/// A retry asks for the size the driver named; a driver whose reply keeps growing
/// (rules added between calls) gets this many attempts.
const ATTEMPTS: usize = 4;

/// The control device's requests.
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        Self { transport }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn with_retry<R>(
        &self,
        mut request: Request,
        decode: impl Fn(&Completion) -> Result<Reply<R>, ClientError>,
    ) -> Result<R, ClientError> {
        for _ in 0..ATTEMPTS {
            match decode(&self.transport.call(&request)?)? {
                Reply::Done(r) => return Ok(r),
                Reply::Retry(size) if size > request.output_len => request.output_len = size,
                Reply::Retry(size) => {
                    return Err(ClientError::Malformed {
                        request: request.name,
                        detail: format!(
                            "the driver asked for {size} bytes after getting {}",
                            request.output_len
                        ),
                    })
                }
            }
        }
        Err(ClientError::Malformed {
            request: request.name,
            detail: "the reply kept growing".into(),
        })
    }

    /// Counters, policy generation, per-rule hits, event drops.
    pub fn stats(&self) -> Result<Stats, ClientError> {
        self.with_retry(
            proto::stats_request(proto::STATS_FIRST_RULES),
            proto::decode_stats,
        )
    }

    /// Encodes `policy` and makes it the active policy (atomic replace).
    pub fn set_policy(&self, policy: &Policy) -> Result<SetPolicyReply, ClientError> {
        let blob = encode(policy)?;
        self.set_policy_blob(blob)
    }

    /// Sends an already encoded blob.
    pub fn set_policy_blob(&self, blob: Vec<u8>) -> Result<SetPolicyReply, ClientError> {
        proto::decode_set_policy(&self.transport.call(&proto::set_policy_request(blob)?)?)
    }

    /// Removes the active policy (the driver permits everything again).
    pub fn clear_policy(&self) -> Result<SetPolicyReply, ClientError> {
        self.set_policy_blob(Vec::new())
    }

    /// The active blob and its generation.
    pub fn get_policy_blob(&self) -> Result<ActivePolicy, ClientError> {
        self.with_retry(
            proto::get_policy_request(proto::POLICY_FIRST_BYTES),
            proto::decode_get_policy,
        )
    }

    /// The active policy, decoded (`None` when no policy is loaded).
    pub fn get_policy(&self) -> Result<(u64, Option<Policy>), ClientError> {
        let active = self.get_policy_blob()?;
        if active.blob.is_empty() {
            return Ok((active.generation, None));
        }
        let policy = wire::decode(&active.blob).map_err(|e| ClientError::Malformed {
            request: "get policy",
            detail: format!("the active blob does not decode: {e}"),
        })?;
        Ok((active.generation, Some(policy)))
    }

    /// One read of whole event records; blocks (pended in the driver) until there is at
    /// least one, or until cancelled ([`ClientError::Cancelled`]).
    pub fn read_event_bytes(&self) -> Result<Vec<u8>, ClientError> {
        let c = self
            .transport
            .call(&proto::read_events_request(proto::EVENTS_BUFFER_BYTES))?;
        proto::decode_events_bytes(&c).map(<[u8]>::to_vec)
    }
}

/// The wire blob of `policy`, with the size limit as a [`ClientError`].
pub fn encode(policy: &Policy) -> Result<Vec<u8>, ClientError> {
    wire::encode(policy).map_err(|e| match e {
        wire::EncodeError::TooLarge => ClientError::PolicyTooLarge {
            bytes: 0,
            limit: weir_policy::limits::MAX_BLOB_BYTES,
        },
        other => ClientError::Malformed {
            request: "set policy",
            detail: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use weir_abi::policy::{write_policy_reply, PolicyWritten};

    /// A driver double that keeps one blob, answers like the ABI says, and records requests.
    struct FakeDriver {
        blob: RefCell<Vec<u8>>,
        generation: RefCell<u64>,
        seen: RefCell<Vec<Request>>,
    }

    impl Transport for FakeDriver {
        fn call(&self, r: &Request) -> Result<Completion, ClientError> {
            self.seen.borrow_mut().push(r.clone());
            let mut out = vec![0u8; r.output_len];
            match r.code {
                weir_abi::IOCTL_WEIR_SET_POLICY => {
                    *self.blob.borrow_mut() = r.input.clone();
                    *self.generation.borrow_mut() += 1;
                    let n = SetPolicyReply::new(*self.generation.borrow(), 0, 0)
                        .encode_into(&mut out)
                        .unwrap();
                    Ok(Completion {
                        status: 0,
                        output: out[..n].to_vec(),
                    })
                }
                weir_abi::IOCTL_WEIR_GET_POLICY => match write_policy_reply(
                    &mut out,
                    *self.generation.borrow(),
                    &self.blob.borrow(),
                ) {
                    PolicyWritten::Complete(n) => Ok(Completion {
                        status: 0,
                        output: out[..n].to_vec(),
                    }),
                    PolicyWritten::HeaderOnly(n) => Ok(Completion {
                        status: weir_abi::STATUS_BUFFER_OVERFLOW,
                        output: out[..n].to_vec(),
                    }),
                    w => panic!("{w:?}"),
                },
                _ => Ok(Completion {
                    status: weir_abi::STATUS_INVALID_DEVICE_REQUEST,
                    output: vec![],
                }),
            }
        }
    }

    #[test]
    fn set_get_clear_round_trip_with_a_retry_for_large_blobs() {
        let driver = FakeDriver {
            blob: RefCell::default(),
            generation: RefCell::default(),
            seen: RefCell::default(),
        };
        let client = Client::new(&driver);
        let mut policy = Policy::permit_all();
        policy.sets.push(weir_policy::AddressSet {
            name: "big".into(),
            entries: (0..20_000u32)
                .map(|i| weir_policy::AddrRange::V4 {
                    lo: i * 4,
                    hi: i * 4 + 1,
                })
                .collect(),
        });
        assert_eq!(client.set_policy(&policy).unwrap().generation, 1);
        let (generation, got) = client.get_policy().unwrap();
        assert_eq!((generation, got), (1, Some(policy)));
        // The blob is larger than the first buffer: two get requests.
        let gets = driver
            .seen
            .borrow()
            .iter()
            .filter(|r| r.code == weir_abi::IOCTL_WEIR_GET_POLICY)
            .count();
        assert_eq!(gets, 2);
        assert_eq!(client.clear_policy().unwrap().generation, 2);
        assert_eq!(client.get_policy().unwrap(), (2, None));
        let e = client.stats().unwrap_err();
        assert!(matches!(e, ClientError::AbiMismatch { .. }), "{e}");
    }
}
