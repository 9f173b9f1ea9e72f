//! Byte layouts written out from the kernel's struct definitions
//! (`ip_vs_sync_mesg`, `ip_vs_sync_v4`, `ip_vs_sync_v6`, the option TLVs),
//! decoding and encoding against them, every rejection, the size rules of
//! the sender, and arbitrary input.

use super::*;
use proptest::prelude::*;

/// Header (`struct ip_vs_sync_mesg`) + one `struct ip_vs_sync_v4`:
/// TCP 10.0.0.1:50000 → 192.168.0.10:80, server 10.1.0.11:80, direct
/// routing, ESTABLISHED, 900 s, syncid 7.
#[rustfmt::skip]
const ONE_V4: [u8; 44] = [
    // header
    0x00,                   //  0 reserved (0 in v1)
    0x07,                   //  1 syncid
    0x00, 0x2c,             //  2 size = 44
    0x01,                   //  4 nr_conns
    0x01,                   //  5 version
    0x00, 0x00,             //  6 spare
    // record at 8
    0x00,                   //  8+0  type: IPv4
    0x06,                   //  8+1  protocol: TCP
    0x00, 0x24,             //  8+2  ver_size: version 0, size 36
    0x00, 0x00, 0x00, 0x83, //  8+4  flags: DROUTE | NOOUTPUT
    0x00, 0x01,             //  8+8  state: ESTABLISHED
    0xc3, 0x50,             //  8+10 cport 50000
    0x00, 0x50,             //  8+12 vport 80
    0x00, 0x50,             //  8+14 dport 80
    0x00, 0x00, 0x00, 0x00, //  8+16 fwmark
    0x00, 0x00, 0x03, 0x84, //  8+20 timeout 900
    10, 0, 0, 1,            //  8+24 caddr
    192, 168, 0, 10,        //  8+28 vaddr
    10, 1, 0, 11,           //  8+32 daddr
];

/// A v4 template with `IPVS_OPT_SEQ_DATA` (36 + 26 = 62 bytes, padded to 64),
/// then a v6 UDP connection (72 bytes): 8 + 64 + 72 = 144.
#[rustfmt::skip]
const V4_SEQ_THEN_V6: [u8; 144] = [
    0x00, 0x00, 0x00, 0x90, 0x02, 0x01, 0x00, 0x00, // header: syncid 0, size 144, 2 records
    // record 0 at 8: a fwmark template
    0x00, 0x00,             // type v4, protocol 0 (IPPROTO_IP)
    0x00, 0x3e,             // size 62
    0x00, 0x00, 0x11, 0x83, // flags: TEMPLATE | INACTIVE | NOOUTPUT | DROUTE
    0x00, 0x00,             // state: CTPL_NONE
    0x00, 0x00,             // cport 0
    0x00, 0x00,             // vport 0
    0x00, 0x00,             // dport 0
    0x00, 0x00, 0x00, 0x05, // fwmark 5
    0x00, 0x00, 0x01, 0x68, // timeout 360
    10, 0, 0, 0,            // caddr (masked /24)
    0, 0, 0, 5,             // vaddr: the fwmark as an address
    10, 1, 0, 12,           // daddr
    0x01, 0x18,             // option SEQ_DATA, length 24
    0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // in_seq
    0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, // out_seq
    0x00, 0x00,             // padding to 72
    // record 1 at 72: IPv6 UDP
    0x01, 0x11,             // type v6, protocol UDP
    0x00, 0x48,             // size 72
    0x00, 0x00, 0x01, 0x82, // flags: INACTIVE | NOOUTPUT | TUNNEL
    0x00, 0x00,             // state: UDP_NORMAL
    0x13, 0x88,             // cport 5000
    0x00, 0x35,             // vport 53
    0x00, 0x35,             // dport 53
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x01, 0x2c, // timeout 300
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // caddr 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, // vaddr 2001:db8::80
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b, // daddr 2001:db8:1::b
];

fn v4(c: [u8; 4], v: [u8; 4], d: [u8; 4]) -> SyncAddrs {
    SyncAddrs::V4 {
        client: c.into(),
        virt: v.into(),
        dest: d.into(),
    }
}

fn tcp_conn() -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: flags::DROUTE | flags::NOOUTPUT,
        state: state::TCP_ESTABLISHED,
        cport: 50000,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout: 900,
        addrs: v4([10, 0, 0, 1], [192, 168, 0, 10], [10, 1, 0, 11]),
        seq: None,
        pe: None,
    }
}

fn fwmark_template() -> SyncConn {
    SyncConn {
        protocol: 0,
        flags: flags::TEMPLATE | flags::INACTIVE | flags::NOOUTPUT | flags::DROUTE,
        state: state::CTPL_NONE,
        cport: 0,
        vport: 0,
        dport: 0,
        fwmark: 5,
        timeout: 360,
        addrs: v4([10, 0, 0, 0], [0, 0, 0, 5], [10, 1, 0, 12]),
        seq: Some(SeqOption {
            in_seq: SeqData {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            out_seq: SeqData {
                init_seq: 4,
                delta: 5,
                previous_delta: 6,
            },
        }),
        pe: None,
    }
}

fn udp6_conn() -> SyncConn {
    let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    SyncConn {
        protocol: 17,
        flags: flags::INACTIVE | flags::NOOUTPUT | flags::TUNNEL,
        state: state::UDP_NORMAL,
        cport: 5000,
        vport: 53,
        dport: 53,
        fwmark: 0,
        timeout: 300,
        addrs: SyncAddrs::V6 {
            client: a("2001:db8::1"),
            virt: a("2001:db8::80"),
            dest: a("2001:db8:1::b"),
        },
        seq: None,
        pe: None,
    }
}

fn decode(b: &[u8]) -> Result<Vec<SyncConn>> {
    let m = Message::new_checked(b)?;
    m.records().map(|r| r.to_conn()).collect()
}

fn encode(syncid: u8, conns: &[SyncConn]) -> Vec<u8> {
    let mut b = MessageBuilder::new(syncid, MAX_MESSAGE_LEN);
    for c in conns {
        b.push(c).unwrap();
    }
    b.take().unwrap()
}

#[test]
fn struct_sizes_match_the_kernel() {
    assert_eq!(HEADER_LEN, 8);
    assert_eq!(V4_LEN, 36);
    assert_eq!(V6_LEN, 72);
    assert_eq!(opt::F_PARAM, 0x40);
    assert_eq!(flags::BACKUP_MASK, 0x1f87);
    assert_eq!(flags::received(0xffff_ffff), 0x1fa7);
}

#[test]
fn decodes_a_v4_record_from_the_kernel_layout() {
    let m = Message::new_checked(&ONE_V4[..]).unwrap();
    assert_eq!(
        (m.syncid(), m.size(), m.nr_conns(), m.version()),
        (7, 44, 1, 1)
    );
    let r = m.records().next().unwrap();
    assert!(!r.is_ipv6());
    assert_eq!(r.options().count(), 0);
    assert_eq!(r.to_conn().unwrap(), tcp_conn());
    assert_eq!(m.records().count(), 1);
}

#[test]
fn encodes_the_kernel_layout() {
    assert_eq!(encode(7, &[tcp_conn()]), ONE_V4);
    assert_eq!(encode(0, &[fwmark_template(), udp6_conn()]), V4_SEQ_THEN_V6);
}

#[test]
fn decodes_options_padding_and_v6() {
    let got = decode(&V4_SEQ_THEN_V6).unwrap();
    assert_eq!(got, [fwmark_template(), udp6_conn()]);
    let m = Message::new_checked(&V4_SEQ_THEN_V6[..]).unwrap();
    let r: Vec<_> = m.records().collect();
    assert_eq!((r[0].index(), r[1].index()), (0, 1));
    assert!(r[1].is_ipv6());
    assert!(matches!(r[0].options().next(), Some(SyncOption::Seq(_))));
}

#[test]
fn syncid_filter_is_the_kernels() {
    let m = Message::new_checked(&ONE_V4[..]).unwrap();
    assert!(m.accepts_syncid(0));
    assert!(m.accepts_syncid(7));
    assert!(!m.accepts_syncid(8));
}

/// `ONE_V4` with the record's length and the message's grown by `opts`.
fn one_v4_with(opts: &[u8]) -> Vec<u8> {
    let mut b = ONE_V4.to_vec();
    b.extend_from_slice(opts);
    let size = b.len() as u16;
    b[2..4].copy_from_slice(&size.to_be_bytes());
    b[10..12].copy_from_slice(&(36 + opts.len() as u16).to_be_bytes());
    b
}

#[test]
fn pe_options_and_optional_unknown_options() {
    let b = one_v4_with(&[
        0x45, 0x02, 0xaa, 0xbb, // unknown type 5 with F_PARAM: skipped
        0x02, 0x03, b'c', b'i', b'd', // PE_DATA
        0x03, 0x03, b's', b'i', b'p', // PE_NAME
    ]);
    let m = Message::new_checked(&b[..]).unwrap();
    let r = m.records().next().unwrap();
    let o: Vec<_> = r.options().collect();
    assert_eq!(
        o[0],
        SyncOption::Skipped {
            kind: 0x45,
            data: &[0xaa, 0xbb]
        }
    );
    let pe = r.to_conn().unwrap().pe.unwrap();
    assert_eq!((&pe.data[..], &pe.name[..]), (&b"cid"[..], &b"sip"[..]));
    // And back: the encoder writes PE_DATA then PE_NAME, as the kernel.
    let mut c = tcp_conn();
    c.pe = Some(pe);
    assert_eq!(encode(7, &[c.clone()]).len(), 44 + 10);
    assert_eq!(decode(&encode(7, &[c.clone()])).unwrap(), [c]);
}

#[test]
fn unknown_mandatory_option_drops_only_its_record() {
    let mut b = one_v4_with(&[0x05, 0x02, 0, 0]);
    // A second, plain record after it: the message stays valid.
    b.extend_from_slice(&ONE_V4[8..]);
    b[4] = 2;
    let size = b.len() as u16;
    b[2..4].copy_from_slice(&size.to_be_bytes());
    let m = Message::new_checked(&b[..]).unwrap();
    let r: Vec<_> = m.records().collect();
    assert_eq!(r[0].options().last(), Some(SyncOption::UnknownMandatory(5)));
    assert_eq!(
        r[0].to_conn(),
        Err(SyncError::UnknownMandatoryOption { index: 0, kind: 5 })
    );
    assert_eq!(r[1].to_conn(), Ok(tcp_conn()));
}

#[test]
fn pe_data_without_name_drops_only_its_record() {
    let b = one_v4_with(&[0x02, 0x02, 1, 2]);
    let m = Message::new_checked(&b[..]).unwrap();
    let r = m.records().next().unwrap();
    assert_eq!(r.to_conn(), Err(SyncError::PeDataWithoutName { index: 0 }));
}

#[test]
fn rejects_bad_headers() {
    use SyncError::*;
    assert_eq!(decode(&ONE_V4[..7]), Err(HeaderTruncated { len: 7 }));
    assert_eq!(
        decode(&ONE_V4[..43]),
        Err(SizeMismatch { size: 44, len: 43 })
    );
    for (at, v) in [(0, 1u8), (5, 0), (5, 2), (7, 1)] {
        let mut b = ONE_V4;
        b[at] = v;
        assert!(
            matches!(decode(&b), Err(NotVersion1 { .. })),
            "byte {at} = {v}"
        );
    }
    let mut b = ONE_V4;
    b[4] = 2;
    assert_eq!(decode(&b), Err(TooManyRecords { count: 2, room: 1 }));
}

#[test]
fn rejects_bad_records() {
    use SyncError::*;
    let with = |at: usize, v: &[u8]| {
        let mut b = ONE_V4;
        b[at..at + v.len()].copy_from_slice(v);
        decode(&b)
    };
    assert_eq!(
        with(10, &[0x00, 0x25]),
        Err(RecordOverrun { index: 0, size: 37 })
    );
    assert_eq!(
        with(10, &[0x10, 0x24]),
        Err(RecordVersion {
            index: 0,
            version: 1
        })
    );
    assert_eq!(with(8, &[0x02]), Err(RecordType { index: 0, kind: 2 }));
    assert_eq!(
        with(10, &[0x00, 0x23]),
        Err(RecordTooShort { index: 0, size: 35 })
    );
    assert_eq!(
        with(10, &[0x00, 0x00]),
        Err(RecordTooShort { index: 0, size: 0 })
    );
    // The IPv6 bit on a 36-byte record: shorter than a v6 record's 72.
    assert_eq!(with(8, &[0x03]), Err(RecordTooShort { index: 0, size: 36 }));
    // The second of two records claims more than is left.
    let mut b = encode(7, &[tcp_conn(), tcp_conn()]);
    b[8 + 36 + 2..8 + 36 + 4].copy_from_slice(&0x30u16.to_be_bytes());
    assert_eq!(
        decode(&b),
        Err(RecordOverrun {
            index: 1,
            size: 0x30
        })
    );
    // Room for two 36-byte records, but the first takes 64 with padding,
    // leaving 28 bytes where the second should start.
    let mut b = encode(7, &[fwmark_template(), tcp_conn()]);
    b.truncate(100);
    b[2..4].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(decode(&b), Err(RecordTruncated { index: 1 }));
}

#[test]
fn rejects_bad_options() {
    use SyncError::*;
    let err = |opts: &[u8]| decode(&one_v4_with(opts));
    assert_eq!(err(&[0x01]), Err(OptionTruncated { index: 0 }));
    assert_eq!(err(&[0x45, 0x00]), Err(OptionTruncated { index: 0 }));
    assert_eq!(err(&[0x45, 0x03, 0, 0]), Err(OptionTruncated { index: 0 }));
    assert_eq!(
        err(&[0x01, 0x04, 0, 0, 0, 0]),
        Err(BadOption { index: 0, kind: 1 })
    );
    let mut twice = vec![0x03, 0x01, b'x'];
    twice.extend_from_slice(&[0x43, 0x01, b'y']);
    assert_eq!(
        err(&twice),
        Err(BadOption {
            index: 0,
            kind: 0x43
        })
    );
    let mut long_name = vec![0x03, 17];
    long_name.extend_from_slice(&[b'n'; 17]);
    assert_eq!(err(&long_name), Err(BadOption { index: 0, kind: 3 }));
}

#[test]
fn builder_fills_a_1500_byte_mtu_as_the_kernel() {
    let max = max_message_len(Role::Master, 9000, false, 0);
    assert_eq!(max, 1472);
    let mut b = MessageBuilder::new(3, max);
    let mut n = 0;
    while b.push(&tcp_conn()).is_ok() {
        n += 1;
    }
    assert_eq!(n, 40); // 8 + 40 × 36 = 1448; one more is 1484
    let m = b.take().unwrap();
    assert_eq!(m.len(), 1448);
    assert!(b.is_empty());
    assert_eq!(decode(&m).unwrap().len(), 40);
    // 62-byte records take 64 with their padding, but the last is not padded.
    let mut b = MessageBuilder::new(3, max);
    let mut n = 0;
    while b.push(&fwmark_template()).is_ok() {
        n += 1;
    }
    assert_eq!((n, b.len()), (22, 8 + 21 * 64 + 62));
}

#[test]
fn builder_limits() {
    // The first record always goes in, as the kernel grows its buffer.
    let mut b = MessageBuilder::new(0, 1);
    assert_eq!(b.push(&tcp_conn()), Ok(()));
    assert_eq!(b.push(&tcp_conn()), Err(EncodeError::Full));
    // Never more than 255 records (nr_conns is one byte).
    let mut b = MessageBuilder::new(0, MAX_MESSAGE_LEN);
    for _ in 0..255 {
        b.push(&tcp_conn()).unwrap();
    }
    assert_eq!(b.push(&tcp_conn()), Err(EncodeError::Full));
    assert_eq!(decode(&b.take().unwrap()).unwrap().len(), 255);
    let mut bad = tcp_conn();
    bad.pe = Some(PeOption {
        data: vec![],
        name: b"sip".to_vec(),
    });
    assert_eq!(b.push(&bad), Err(EncodeError::PeDataLength(0)));
    bad.pe = Some(PeOption {
        data: vec![1],
        name: vec![b'n'; 17],
    });
    assert_eq!(b.push(&bad), Err(EncodeError::PeNameLength(17)));
    assert_eq!(b.take(), None);
}

#[test]
fn message_size_bounds_follow_start_sync_thread() {
    use Role::*;
    assert_eq!(max_message_len(Master, 9000, false, 0), 1472);
    assert_eq!(max_message_len(Master, 9000, true, 0), 1452);
    assert_eq!(max_message_len(Backup, 9000, false, 0), 8972);
    assert_eq!(max_message_len(Backup, 1400, false, 0), 1472);
    assert_eq!(max_message_len(Backup, 9000, false, 100), 1024);
    assert_eq!(max_message_len(Master, 9000, false, 100), 100);
    assert_eq!(max_message_len(Master, 1500, false, 70000), 65507);
}

fn arb_conn() -> impl Strategy<Value = SyncConn> {
    let addrs = prop_oneof![
        any::<([u8; 4], [u8; 4], [u8; 4])>().prop_map(|(c, v, d)| v4(c, v, d)),
        any::<([u8; 16], [u8; 16], [u8; 16])>().prop_map(|(c, v, d)| SyncAddrs::V6 {
            client: c.into(),
            virt: v.into(),
            dest: d.into(),
        }),
    ];
    let seq = proptest::option::of(any::<[u32; 6]>().prop_map(|s| SeqOption {
        in_seq: SeqData {
            init_seq: s[0],
            delta: s[1],
            previous_delta: s[2],
        },
        out_seq: SeqData {
            init_seq: s[3],
            delta: s[4],
            previous_delta: s[5],
        },
    }));
    let pe = proptest::option::of(
        (
            proptest::collection::vec(any::<u8>(), 1..=255),
            proptest::collection::vec(any::<u8>(), 1..=16),
        )
            .prop_map(|(data, name)| PeOption { data, name }),
    );
    (
        any::<(u8, u16, u16, u16, u16, u32, u32)>(),
        0..0x2000u32,
        addrs,
        seq,
        pe,
    )
        .prop_map(
            |((protocol, state, cport, vport, dport, fwmark, timeout), flags, addrs, seq, pe)| {
                SyncConn {
                    protocol,
                    flags,
                    state,
                    cport,
                    vport,
                    dport,
                    fwmark,
                    timeout,
                    addrs,
                    seq,
                    pe,
                }
            },
        )
}

/// Walks everything a checked message offers.
fn walk(b: &[u8]) {
    if let Ok(m) = Message::new_checked(b) {
        for r in m.records() {
            let _ = (r.flags(), r.state(), r.addrs(), r.timeout(), r.fwmark());
            let _ = r.options().count();
            let _ = r.to_conn();
        }
    }
}

proptest! {
    #[test]
    fn round_trip(conns in proptest::collection::vec(arb_conn(), 1..40), syncid: u8) {
        let mut b = MessageBuilder::new(syncid, 1472);
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for c in &conns {
            if b.push(c) == Err(EncodeError::Full) {
                out.push(b.take().unwrap());
                b.push(c).unwrap();
            }
            sent.push(c.clone());
        }
        out.extend(b.take());
        let mut got = Vec::new();
        for m in &out {
            prop_assert!(m.len() <= 1472 || Message::new_checked(&m[..]).unwrap().nr_conns() == 1);
            prop_assert_eq!(Message::new_checked(&m[..]).unwrap().syncid(), syncid);
            got.extend(decode(m).unwrap());
        }
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        walk(&b);
    }

    #[test]
    fn arbitrary_records_under_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        nr in 0u8..12,
    ) {
        let mut b = vec![0, 0, 0, 0, nr, VERSION, 0, 0];
        b.extend_from_slice(&body);
        let size = b.len() as u16;
        b[2..4].copy_from_slice(&size.to_be_bytes());
        walk(&b);
    }

    #[test]
    fn mutated_messages_never_panic(
        conns in proptest::collection::vec(arb_conn(), 1..4),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut b = encode(0, &conns);
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(cut % (b.len() + 1));
        walk(&b);
        // With the size field repaired, the record walk is exercised too.
        if b.len() >= HEADER_LEN {
            let size = b.len() as u16;
            b[2..4].copy_from_slice(&size.to_be_bytes());
            walk(&b);
        }
    }
}
