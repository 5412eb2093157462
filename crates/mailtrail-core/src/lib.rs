//! mailtrail-core: everything about an email event that needs no I/O.
//!
//! - [`event`] is the provider-neutral [`Event`] every provider's report turns into.
//! - [`provider`] is the seam: it picks the parser by the envelope's [`Source`].
//! - [`mailgun`] reads Mailgun's bodies (current JSON, legacy urlencoded and multipart forms,
//!   Events API items) and maps its codes and reasons to each event's [`Effect`]; it also pulls
//!   out the signed fields for the receiver.
//! - [`signature`] verifies Mailgun's HMAC against one or more signing keys, in constant time.
//! - [`status`] holds the order-independent precedence rule (which knows no provider) that the
//!   store's SQL mirrors.
//! - [`triage`] decides per event: store (as an [`EventRow`]), skip, or dead-letter; a
//!   conversion report (source `app`) becomes one [`Conversion`] each.
//! - [`conversion`] checks a conversion the application reports, for the API, the CLI and the
//!   worker alike.
//! - [`variables`] reads custom variables in every shape Mailgun produces.
//! - [`envelope`] is the one-line JSON the receiver queues and the worker pops.
//! - [`excerpt`] bounds what an error message may quote from a request.

pub mod conversion;
pub mod envelope;
pub mod event;
pub mod event_key;
pub mod excerpt;
pub mod mailgun;
pub mod provider;
pub mod row;
pub mod sample;
pub mod signature;
pub mod status;
pub mod triage;
pub mod variables;

pub use conversion::{
    Conversion, ConversionError, DEFAULT_ATTRIBUTION_WINDOW_DAYS, MAX_ATTRIBUTION_WINDOW_DAYS,
    MAX_CONVERSIONS_PER_REPORT, ReportError,
};
pub use envelope::{Envelope, Source};
pub use event::{Event, EventKind, MessageId, Severity};
pub use excerpt::Excerpt;
pub use row::EventRow;
pub use signature::{SignatureError, SignedToken, SigningKey, SigningKeys};
pub use status::{DeliveryStatus, Effect, Engagement, MessageState, StatusClaim};
pub use triage::{Unreadable, Verdict, triage};
pub use variables::UserVariables;
