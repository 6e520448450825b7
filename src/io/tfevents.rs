//! TensorBoard event files (`events.out.tfevents.*`), written without TensorFlow, so
//! `tensorboard --logdir runs/` shows any deepnet run in the viewer people already use.
//!
//! The format (TensorFlow's `core/util/event.proto` and `record_writer.cc`): a file is a
//! sequence of records, each `u64 length | u32 masked_crc32c(length) | data | u32
//! masked_crc32c(data)`, little-endian; `data` is an `Event` protocol buffer. deepnet writes
//! three kinds of event: the first one of each file names the format (`file_version` (field 3)
//! = "brain.Event:2"); a scalar is `Event { wall_time (1), step (2), summary (5) { value (1) {
//! tag (1), simple_value (2) } } }`; a restart is `Event { step, session_log (7) { status (1):
//! START (1) } }`, which
//! tells TensorBoard to drop the events at and after that step written by the run before it
//! was resumed (they are written again). The protobuf encoding is done by hand: four fields
//! of three messages do not need a protobuf compiler.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// TensorFlow's CRC mask: a CRC of data that itself holds CRCs is weak, so the stored value is
/// rotated and offset.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A protobuf field key: field number and wire type (0 varint, 1 fixed64, 2 bytes, 5 fixed32).
fn key(field: u64, wire: u64, out: &mut Vec<u8>) {
    varint((field << 3) | wire, out);
}

fn bytes_field(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// What one event carries besides its time and step.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The format marker that starts every file.
    FileVersion(String),
    /// Scalars, `(tag, value)`.
    Scalars(Vec<(String, f32)>),
    /// The run (re)starts at this event's step: TensorBoard drops older events at or after it.
    SessionStart,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The global step.
    pub step: i64,
    /// Its content.
    pub kind: EventKind,
}

impl Event {
    /// The `Event` protocol buffer.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        key(1, 1, &mut out);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        key(2, 0, &mut out);
        varint(self.step as u64, &mut out);
        match &self.kind {
            EventKind::FileVersion(v) => bytes_field(3, v.as_bytes(), &mut out),
            EventKind::Scalars(values) => {
                let mut summary = Vec::new();
                for (tag, v) in values {
                    let mut value = Vec::new();
                    bytes_field(1, tag.as_bytes(), &mut value);
                    key(2, 5, &mut value);
                    value.extend_from_slice(&v.to_le_bytes());
                    bytes_field(1, &value, &mut summary);
                }
                bytes_field(5, &summary, &mut out);
            }
            EventKind::SessionStart => {
                // Event.session_log (field 7) = SessionLog { status = 1 (START) }
                bytes_field(7, &[0x08, 0x01], &mut out);
            }
        }
        out
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Appends events to a new `events.out.tfevents.*` file in a directory. Writes are buffered;
/// [`flush`](Self::flush) pushes them to the file (the training loop flushes at every
/// checkpoint and epoch end, so a crash loses only events that will be written again).
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named as TensorFlow names them
    /// (`events.out.tfevents.SECONDS.NANOS.deepnet.PID`: unique, and in time order by name,
    /// which is the order TensorBoard reads them in).
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "events.out.tfevents.{:010}.{:09}.deepnet.{}",
            t.as_secs(),
            t.subsec_nanos(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        w.write(&Event {
            wall_time: now(),
            step: 0,
            kind: EventKind::FileVersion("brain.Event:2".into()),
        })?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let data = event.encode();
        let len = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&masked_crc(&len).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc(&data).to_le_bytes());
        self.out
            .write_all(&record)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Writes scalars `(tag, value)` at `step`, stamped now.
    pub fn scalars(&mut self, step: usize, values: &[(&str, f64)]) -> Result<()> {
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            kind: EventKind::Scalars(
                values
                    .iter()
                    .map(|(t, v)| (t.to_string(), *v as f32))
                    .collect(),
            ),
        })
    }

    /// Marks a restart at `step` (see the module doc).
    pub fn session_start(&mut self, step: usize) -> Result<()> {
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            kind: EventKind::SessionStart,
        })
    }

    /// Pushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
    /// Next field: (number, wire type, payload for wire types 1, 2, 5; value for 0).
    fn field(&mut self) -> Option<(u64, u64, &[u8], u64)> {
        let k = self.varint()?;
        let (field, wire) = (k >> 3, k & 7);
        Some(match wire {
            0 => (field, wire, &[][..], self.varint()?),
            1 => (field, wire, self.take(8)?, 0),
            2 => {
                let n = self.varint()? as usize;
                (field, wire, self.take(n)?, 0)
            }
            5 => (field, wire, self.take(4)?, 0),
            _ => return None,
        })
    }
}

fn decode(data: &[u8]) -> Option<Event> {
    let mut r = Reader { bytes: data, at: 0 };
    let (mut wall_time, mut step, mut kind) = (0.0, 0i64, None);
    while !r.done() {
        match r.field()? {
            (1, 1, b, _) => wall_time = f64::from_le_bytes(b.try_into().ok()?),
            (2, 0, _, v) => step = v as i64,
            (3, 2, b, _) => kind = Some(EventKind::FileVersion(String::from_utf8_lossy(b).into())),
            (5, 2, b, _) => {
                let mut values = Vec::new();
                let mut s = Reader { bytes: b, at: 0 };
                while !s.done() {
                    let (_, _, value, _) = s.field()?;
                    let mut v = Reader {
                        bytes: value,
                        at: 0,
                    };
                    let (mut tag, mut x) = (String::new(), f32::NAN);
                    while !v.done() {
                        match v.field()? {
                            (1, 2, t, _) => tag = String::from_utf8_lossy(t).into(),
                            (2, 5, f, _) => x = f32::from_le_bytes(f.try_into().ok()?),
                            _ => {}
                        }
                    }
                    values.push((tag, x));
                }
                kind = Some(EventKind::Scalars(values));
            }
            (7, 2, _, _) => kind = Some(EventKind::SessionStart),
            _ => {}
        }
    }
    Some(Event {
        wall_time,
        step,
        kind: kind?,
    })
}

/// Reads every event of the file at `path`, checking both CRCs of every record. A torn last
/// record (a crash mid-write) ends the list; any other damage is an error naming the offset.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = super::read_file(path, super::Limit::EVENTS)?;
    let mut events = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 12) else {
            break; // torn tail
        };
        let len_bytes = &head[..8];
        let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if crc != masked_crc(len_bytes) {
            return Err(Error::bad_data(
                path,
                format!("record at byte {at}: length CRC mismatch"),
            ));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let Some(rest) = bytes.get(at + 12..at + 12 + len + 4) else {
            break; // torn tail
        };
        let (data, crc) = rest.split_at(len);
        if u32::from_le_bytes(crc.try_into().expect("4 bytes")) != masked_crc(data) {
            return Err(Error::bad_data(
                path,
                format!("record at byte {at}: data CRC mismatch"),
            ));
        }
        let event = decode(data).ok_or_else(|| {
            Error::bad_data(path, format!("record at byte {at}: not an Event message"))
        })?;
        events.push(event);
        at += 12 + len + 4;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow() {
        // TensorFlow's crc32c test vector: crc32c("123456789") = 0xE3069283; masked:
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8, worked out by hand.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn events_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("loss", 0.5), ("accuracy", 0.75)]).unwrap();
        w.session_start(2).unwrap();
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].kind,
            EventKind::FileVersion("brain.Event:2".into())
        );
        assert_eq!(events[1].step, 3);
        assert_eq!(
            events[1].kind,
            EventKind::Scalars(vec![("loss".into(), 0.5), ("accuracy".into(), 0.75)])
        );
        assert_eq!(events[2].kind, EventKind::SessionStart);
        assert!(events[1].wall_time > 1.7e9);
        // One flipped bit in the data of the second record is caught by its CRC.
        let mut bytes = std::fs::read(&path).unwrap();
        let first = 12 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 4;
        bytes[first + 14] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_events(&path)
            .unwrap_err()
            .to_string()
            .contains("CRC mismatch"));
    }
}
