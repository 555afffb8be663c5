//! The audit subsystem: the auditd event provider (our rules, keyed
//! `mdatp`, and the records they produce) and login events from PAM's
//! records, read passively from the audit netlink multicast group.

pub mod arch;
pub mod assemble;
pub mod control;
pub mod convert;
pub mod execve;
mod fields;
pub mod loss;
pub mod netlink;
pub mod rules;
pub mod selection;
pub mod sockets;
pub mod source;

pub use control::{AuditError, AuditStatus, Auditctl};
