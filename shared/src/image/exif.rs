//! The capture time from EXIF (`DateTimeOriginal`), for telling a burst of the same scene
//! from the same scene shot on another day. EXIF gives local wall-clock time without a
//! zone, so the value is "seconds since 1970-01-01 00:00 local": good for differences
//! between photos of one camera, not for absolute time.

use exif::{In, Reader, Tag, Value};

/// Parses `YYYY:MM:DD HH:MM:SS` (EXIF's format) into naive seconds since 1970.
pub fn parse_exif_datetime(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text).ok()?.trim_matches(char::from(0)).trim();
    let b = s.as_bytes();
    let separators = b.len() == 19
        && [(4, b':'), (7, b':'), (10, b' '), (13, b':'), (16, b':')]
            .iter()
            .all(|&(i, c)| b[i] == c);
    if !separators {
        return None;
    }
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let valid = (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && sec < 61 && y > 0;
    valid.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
