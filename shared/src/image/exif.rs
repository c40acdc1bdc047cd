//! The capture time from EXIF (`DateTimeOriginal`), for telling a burst of the same scene
//! from the same scene shot on another day. EXIF gives local wall-clock time, so the value is
//! "seconds since 1970-01-01 00:00 local": good for differences between photos, not for
//! absolute time.
//!
//! `OffsetTimeOriginal` (EXIF 2.31, written by recent phones) is read by kamadak-exif but
//! deliberately not applied: most cameras and older phones write no offset, and an album
//! mixing photos with and without one would then compare UTC with local time, hours apart.
//! Naive local time keeps every photo of one trip on one clock, which is what the
//! "shot within minutes" test of the duplicate tiers needs.

use exif::{DateTime, In, Reader, Tag, Value};

/// Parses EXIF's `YYYY:MM:DD HH:MM:SS` (kamadak-exif's parser) into naive seconds since
/// 1970, or `None` when it is blank or not a real date and time.
pub fn parse_exif_datetime(text: &[u8]) -> Option<i64> {
    let t = DateTime::from_ascii(text).ok()?;
    // kamadak-exif leaves range checks to the caller: `time` refuses month 13, Feb 30, 25 h.
    let month = time::Month::try_from(t.month).ok()?;
    let date = time::Date::from_calendar_date(i32::from(t.year), month, t.day).ok()?;
    let clock = time::Time::from_hms(t.hour, t.minute, t.second).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp())
}

/// `DateTimeOriginal` (or `DateTime`) from a raw EXIF block (starting at the TIFF header).
pub fn capture_time(tiff: &[u8]) -> Option<i64> {
    let exif = Reader::new().read_raw(tiff.to_vec()).ok()?;
    [Tag::DateTimeOriginal, Tag::DateTime]
        .iter()
        .find_map(|&tag| match &exif.get_field(tag, In::PRIMARY)?.value {
            Value::Ascii(parts) => parts.first().and_then(|p| parse_exif_datetime(p)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_datetimes_parse_to_naive_seconds() {
        assert_eq!(parse_exif_datetime(b"1970:01:01 00:00:00"), Some(0));
        assert_eq!(parse_exif_datetime(b"2024:07:14 10:20:30"), Some(1_720_952_430));
        assert_eq!(
            parse_exif_datetime(b"2024:03:01 00:00:00").unwrap() - parse_exif_datetime(b"2024:02:28 00:00:00").unwrap(),
            2 * 86_400,
            "leap year"
        );
        for bad in [
            &b""[..],
            b"0000:00:00 00:00:00",
            b"    :  :     :  :  ",
            b"2024-07-14T10:20:30x",
            b"2024:13:01 00:00:00",
            b"2023:02:29 00:00:00",
            b"2024:07:14 24:00:00",
        ] {
            assert_eq!(parse_exif_datetime(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(capture_time(b"not exif"), None);
    }

    #[test]
    fn capture_time_is_read_from_a_real_exif_block() {
        let field = exif::Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![b"2024:07:14 10:20:30".to_vec()]),
        };
        let mut writer = exif::experimental::Writer::new();
        writer.push_field(&field);
        let mut tiff = std::io::Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        assert_eq!(capture_time(&tiff.into_inner()), Some(1_720_952_430));
    }
}
