//! `expect_column_values_to_be_dateutil_parseable`: whether Python's `dateutil.parser.parse`
//! would read a string as a date. dateutil is lenient — any mix of numbers, month and weekday
//! names, AM/PM, time zone names and separators that yields at least one date or time field —
//! so this reads the string the same way, token by token, and refuses anything else.

const MONTHS: &[&str] = &[
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: &[&str] = &[
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "thurs",
    "fri",
    "sat",
    "sun",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const WORDS: &[&str] = &[
    "am", "pm", "a", "p", "t", "z", "utc", "gmt", "of", "at", "on", "and", "the", "st", "nd", "rd",
    "th", "h", "m", "s",
];

/// A short all-capitals word such as BRST or CEST.
fn is_zone_name(word: &str) -> bool {
    word.len() <= 4 && word.chars().all(|c| c.is_ascii_uppercase())
}

pub fn dateutil_parseable(text: &str) -> bool {
    let text = text.trim();
    if text.is_empty() {
        return false;
    }
    let mut fields = 0;
    let mut numbers = 0;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() {
            let len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            // A run of digits longer than 14 (YYYYMMDDhhmmss) is not a date.
            if len > 14 {
                return false;
            }
            numbers += 1;
            fields += 1;
            rest = &rest[len..];
        } else if c.is_alphabetic() {
            let len = rest
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(rest.len());
            let word = rest[..len].to_ascii_lowercase();
            if MONTHS.contains(&word.as_str()) {
                fields += 1;
            } else if !DAYS.contains(&word.as_str())
                && !WORDS.contains(&word.as_str())
                && !is_zone_name(&rest[..len])
            {
                return false;
            }
            rest = &rest[len..];
        } else if " ,.-/:+T_".contains(c) {
            rest = &rest[c.len_utf8()..];
        } else {
            return false;
        }
    }
    // Numbers beyond year, month, day, hours, minutes, seconds, fraction and offset are noise.
    fields > 0 && numbers <= 9
}

#[cfg(test)]
mod tests {
    use super::dateutil_parseable;

    #[test]
    fn reads_what_dateutil_reads() {
        for ok in [
            "2018-01-01",
            "Jan 01 1970 12:00:01",
            "01/02/2003",
            "2003-09-25T10:49:41.5-03:00",
            "Thu Sep 25 10:36:28 BRST 2003",
            "March 5",
        ] {
            assert!(dateutil_parseable(ok), "{ok}");
        }
        for bad in ["", "hello", "1-2-3-4-5-6-7-8-9-10", "not a date 12", "$100"] {
            assert!(!dateutil_parseable(bad), "{bad}");
        }
    }
}
