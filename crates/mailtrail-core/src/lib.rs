//! mailtrail-core: everything about a Mailgun webhook that needs no I/O.
//!
//! - [`mailgun`] reads webhook bodies (current JSON, legacy urlencoded and multipart forms) into
//!   one normalised [`MailgunEvent`], and pulls out the signed fields for the receiver.
//! - [`signature`] verifies Mailgun's HMAC against one or more signing keys, in constant time.
//! - [`status`] maps events to a [`DeliveryStatus`] and holds the order-independent precedence
//!   rule that the store's SQL mirrors.
//! - [`variables`] reads custom variables in every shape Mailgun produces.
//! - [`envelope`] is the one-line JSON the receiver queues and the worker pops.

pub mod envelope;
pub mod event;
pub mod event_key;
pub mod mailgun;
pub mod sample;
pub mod signature;
pub mod status;
pub mod variables;

pub use envelope::Envelope;
pub use event::{EventKind, MailgunEvent, MessageId, Severity};
pub use signature::{SignatureError, SignedToken, SigningKey, SigningKeys};
pub use status::{DeliveryStatus, Effect, Engagement, MessageState, StatusClaim};
pub use variables::UserVariables;
