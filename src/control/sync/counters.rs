//! The sync daemon's counters: atomics its threads bump ([`SyncCounters`]),
//! read whole into a plain [`SyncStats`] whose [`SyncStats::rows`] are the
//! one list `pmdlb ctl sync`, `ctl stats` and `/metrics` print.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::lb::sync_record::{NotInstalled, NotSent};
use crate::wire::ipvs_sync::SyncError;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// The daemon's counters, shared by its threads (relaxed adds).
        #[derive(Debug, Default)]
        pub struct SyncCounters {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// One reading of [`SyncCounters`].
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct SyncStats {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl SyncCounters {
            /// Every counter now.
            pub fn read(&self) -> SyncStats {
                SyncStats { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

counters! {
    /// Items taken from the workers' outgoing rings.
    drained,
    /// Datagrams sent (one per peer for unicast).
    datagrams_sent,
    /// Connection records sent (counted once per datagram built).
    conns_sent,
    /// Template records sent.
    templates_sent,
    /// `send_to` failures.
    send_errors,
    /// Not sent: the service is no longer configured.
    not_sent_no_service,
    /// Not sent: the server is no longer configured.
    not_sent_no_server,
    /// Not sent: the template's service is not persistent.
    not_sent_not_persistent,
    /// Not sent: a protocol without an IPVS state table.
    not_sent_protocol,
    /// Not sent: already expired.
    not_sent_expired,
    /// Not sent: the server's family is not the flow's.
    not_sent_mixed_family,
    /// Not sent: the encoder refused the record.
    not_sent_encode,
    /// Datagrams received.
    datagrams_received,
    /// Dropped: shorter than the header.
    drop_header_truncated,
    /// Dropped: the header's size is not the datagram's length.
    drop_size_mismatch,
    /// Dropped: not a version-1 message (a version-0 one, or garbage).
    drop_not_version1,
    /// Dropped: more records announced than fit.
    drop_too_many_records,
    /// Dropped: a record cut off.
    drop_record_truncated,
    /// Dropped: a record's length runs past the datagram.
    drop_record_overrun,
    /// Dropped: a record's version is not 0.
    drop_record_version,
    /// Dropped: a record of unknown type.
    drop_record_type,
    /// Dropped: a record shorter than its fixed part.
    drop_record_too_short,
    /// Dropped: an option cut off or of length 0.
    drop_option_truncated,
    /// Dropped: a known option of a bad length, or given twice.
    drop_bad_option,
    /// Dropped: another cluster's sync id.
    drop_syncid,
    /// Dropped: sent by this director's own sender.
    drop_own,
    /// Dropped: from an address that is not a configured peer (unicast).
    drop_not_peer,
    /// Records received in accepted datagrams.
    records_received,
    /// Records dropped: an unknown mandatory option.
    record_drop_unknown_option,
    /// Records dropped: persistence-engine data without a name.
    record_drop_pe_without_name,
    /// Not installed: a protocol pmdlb does not balance.
    not_installed_protocol,
    /// Not installed: a state outside the protocol's table.
    not_installed_state,
    /// Not installed: no matching virtual service.
    not_installed_no_service,
    /// Not installed: the service has no such real server.
    not_installed_no_server,
    /// Not installed: a template for a service that is not persistent.
    not_installed_not_persistent,
    /// Not installed: persistence-engine data.
    not_installed_persistence_engine,
    /// Connections handed to the workers (once per record, whatever the
    /// number of workers).
    conns_handed,
    /// Templates put in the persistence table.
    templates_installed,
    /// Templates the persistence table refused (full or busy).
    templates_failed,
    /// A worker's install ring was full: the connection did not reach it.
    install_ring_full,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl SyncCounters {
    /// Counts a record the sender could not build.
    pub fn not_sent(&self, why: NotSent) {
        add(
            match why {
                NotSent::NoService => &self.not_sent_no_service,
                NotSent::NoServer => &self.not_sent_no_server,
                NotSent::NotPersistent => &self.not_sent_not_persistent,
                NotSent::Protocol(_) => &self.not_sent_protocol,
                NotSent::Expired => &self.not_sent_expired,
                NotSent::MixedFamily => &self.not_sent_mixed_family,
            },
            1,
        );
    }

    /// Counts a dropped datagram or record by its codec error.
    pub fn dropped(&self, e: SyncError) {
        add(
            match e {
                SyncError::HeaderTruncated { .. } => &self.drop_header_truncated,
                SyncError::SizeMismatch { .. } => &self.drop_size_mismatch,
                SyncError::NotVersion1 { .. } => &self.drop_not_version1,
                SyncError::TooManyRecords { .. } => &self.drop_too_many_records,
                SyncError::RecordTruncated { .. } => &self.drop_record_truncated,
                SyncError::RecordOverrun { .. } => &self.drop_record_overrun,
                SyncError::RecordVersion { .. } => &self.drop_record_version,
                SyncError::RecordType { .. } => &self.drop_record_type,
                SyncError::RecordTooShort { .. } => &self.drop_record_too_short,
                SyncError::OptionTruncated { .. } => &self.drop_option_truncated,
                SyncError::BadOption { .. } => &self.drop_bad_option,
                SyncError::UnknownMandatoryOption { .. } => &self.record_drop_unknown_option,
                SyncError::PeDataWithoutName { .. } => &self.record_drop_pe_without_name,
            },
            1,
        );
    }

    /// Counts a record that is not installed.
    pub fn not_installed(&self, why: NotInstalled) {
        add(
            match why {
                NotInstalled::Protocol(_) => &self.not_installed_protocol,
                NotInstalled::State { .. } => &self.not_installed_state,
                NotInstalled::NoService => &self.not_installed_no_service,
                NotInstalled::NoServer => &self.not_installed_no_server,
                NotInstalled::NotPersistent => &self.not_installed_not_persistent,
                NotInstalled::PersistenceEngine => &self.not_installed_persistence_engine,
            },
            1,
        );
    }

    /// Adds `n` to `c` (a field of this struct).
    pub fn add(c: &AtomicU64, n: u64) {
        add(c, n);
    }
}

/// One printed counter: its metric family (without `pmdlb_sync_` and
/// `_total`), its `reason`/`kind` label (empty: none), its value, and the
/// family's help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Family name, e.g. `datagrams_dropped`.
    pub family: &'static str,
    /// Label name (`reason`, `kind`) or empty.
    pub label: &'static str,
    /// Label value or empty.
    pub value_label: &'static str,
    /// The count.
    pub value: u64,
    /// What the family counts.
    pub help: &'static str,
}

const SENT_HELP: &str = "Records sent to the peers (once per datagram built), by kind.";
const NOT_SENT_HELP: &str =
    "Entries the workers reported that were not sent, by reason (NotSent, encode).";
const DROP_HELP: &str = "Received sync datagrams dropped whole, by reason.";
const RDROP_HELP: &str = "Records of accepted datagrams dropped by the codec, by reason.";
const NI_HELP: &str = "Decoded records not installed, by reason (NotInstalled).";

impl SyncStats {
    /// Every counter as a printed row, families together.
    pub fn rows(&self) -> Vec<Row> {
        let r = |family, label, value_label, value, help| Row {
            family,
            label,
            value_label,
            value,
            help,
        };
        let plain = |family, value, help| r(family, "", "", value, help);
        let s = self;
        let mut v = vec![
            plain(
                "ring_drained",
                s.drained,
                "Items taken from the workers' outgoing sync rings.",
            ),
            plain(
                "datagrams_sent",
                s.datagrams_sent,
                "Sync datagrams sent (one per unicast peer).",
            ),
            r("records_sent", "kind", "conn", s.conns_sent, SENT_HELP),
            r(
                "records_sent",
                "kind",
                "template",
                s.templates_sent,
                SENT_HELP,
            ),
            plain(
                "send_errors",
                s.send_errors,
                "Sync datagrams the kernel refused to send.",
            ),
        ];
        for (reason, n) in [
            ("no_service", s.not_sent_no_service),
            ("no_server", s.not_sent_no_server),
            ("not_persistent", s.not_sent_not_persistent),
            ("protocol", s.not_sent_protocol),
            ("expired", s.not_sent_expired),
            ("mixed_family", s.not_sent_mixed_family),
            ("encode", s.not_sent_encode),
        ] {
            v.push(r("not_sent", "reason", reason, n, NOT_SENT_HELP));
        }
        v.push(plain(
            "datagrams_received",
            s.datagrams_received,
            "Sync datagrams received.",
        ));
        for (reason, n) in [
            ("header_truncated", s.drop_header_truncated),
            ("size_mismatch", s.drop_size_mismatch),
            ("not_version1", s.drop_not_version1),
            ("too_many_records", s.drop_too_many_records),
            ("record_truncated", s.drop_record_truncated),
            ("record_overrun", s.drop_record_overrun),
            ("record_version", s.drop_record_version),
            ("record_type", s.drop_record_type),
            ("record_too_short", s.drop_record_too_short),
            ("option_truncated", s.drop_option_truncated),
            ("bad_option", s.drop_bad_option),
            ("syncid", s.drop_syncid),
            ("own", s.drop_own),
            ("not_peer", s.drop_not_peer),
        ] {
            v.push(r("datagrams_dropped", "reason", reason, n, DROP_HELP));
        }
        v.push(plain(
            "records_received",
            s.records_received,
            "Records in accepted sync datagrams.",
        ));
        for (reason, n) in [
            ("unknown_mandatory_option", s.record_drop_unknown_option),
            ("pe_data_without_name", s.record_drop_pe_without_name),
        ] {
            v.push(r("records_dropped", "reason", reason, n, RDROP_HELP));
        }
        for (reason, n) in [
            ("protocol", s.not_installed_protocol),
            ("state", s.not_installed_state),
            ("no_service", s.not_installed_no_service),
            ("no_server", s.not_installed_no_server),
            ("not_persistent", s.not_installed_not_persistent),
            ("persistence_engine", s.not_installed_persistence_engine),
        ] {
            v.push(r("records_not_installed", "reason", reason, n, NI_HELP));
        }
        v.extend([
            plain(
                "conns_handed",
                s.conns_handed,
                "Received connections handed to the workers (once per record).",
            ),
            plain(
                "templates_installed",
                s.templates_installed,
                "Received templates put in the persistence table.",
            ),
            plain(
                "templates_failed",
                s.templates_failed,
                "Received templates the persistence table refused (full or busy).",
            ),
            plain(
                "install_ring_full",
                s.install_ring_full,
                "Received connections a worker's full install ring refused.",
            ),
        ]);
        v
    }

    /// `name value` lines (`datagrams_dropped.syncid 3`), as `ctl sync`
    /// prints them.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for row in self.rows() {
            let name = if row.value_label.is_empty() {
                row.family.to_owned()
            } else {
                format!("{}.{}", row.family, row.value_label)
            };
            out.push_str(&format!("{name:<42} {:>12}\n", row.value));
        }
        out
    }

    /// Records sent: connections and templates.
    pub fn records_sent(&self) -> u64 {
        self.conns_sent + self.templates_sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_lands_on_its_row() {
        let c = SyncCounters::default();
        c.dropped(SyncError::SizeMismatch { size: 1, len: 2 });
        c.dropped(SyncError::UnknownMandatoryOption { index: 0, kind: 9 });
        c.dropped(SyncError::UnknownMandatoryOption { index: 1, kind: 9 });
        c.not_installed(NotInstalled::NotPersistent);
        c.not_sent(NotSent::Expired);
        let s = c.read();
        let get = |family: &str, reason: &str| {
            s.rows()
                .into_iter()
                .find(|r| r.family == family && r.value_label == reason)
                .map(|r| r.value)
                .unwrap()
        };
        assert_eq!(get("datagrams_dropped", "size_mismatch"), 1);
        assert_eq!(get("records_dropped", "unknown_mandatory_option"), 2);
        assert_eq!(get("records_not_installed", "not_persistent"), 1);
        assert_eq!(get("not_sent", "expired"), 1);
        assert_eq!(get("datagrams_dropped", "syncid"), 0);
        assert!(s
            .table()
            .contains("records_dropped.unknown_mandatory_option"));
        let total: u64 = s.rows().iter().map(|r| r.value).sum();
        assert_eq!(total, 5, "nothing counted twice");
    }
}
