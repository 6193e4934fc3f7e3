//! Working days ("ngày làm việc"): the calendar that deadlines count in.
//!
//! A day is a working day unless it falls on the weekend (Saturday and
//! Sunday by default) or is a configured holiday; a configured extra working
//! day ("ngày làm bù", a Saturday worked to make up for a bridge day off
//! around Tết) is a working day whatever its weekday. Dates are calendar
//! dates in Vietnam (UTC+7): [`vn_date`] turns a Unix time into one.
//!
//! The deadlines of `notes/meeting-rules.md` count in it: the notice of
//! conclusions is due 5 working days after the meeting, the documents are
//! due 3 working days before a regular meeting and 1 before a thematic one
//! (all settings of the server).

use std::collections::BTreeSet;

use time::{Date, Month, Weekday};

/// A working-day calendar: the weekend, holidays, extra working days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    weekend: Vec<Weekday>,
    holidays: BTreeSet<Date>,
    extra_working: BTreeSet<Date>,
}

impl Default for Calendar {
    /// Saturday and Sunday off, no holidays.
    fn default() -> Calendar {
        Calendar {
            weekend: vec![Weekday::Saturday, Weekday::Sunday],
            holidays: BTreeSet::new(),
            extra_working: BTreeSet::new(),
        }
    }
}

/// Why a calendar setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CalendarError(pub String);

impl Calendar {
    /// A calendar with `weekend` days off every week, `holidays` off, and
    /// `extra_working` days worked (they win over the weekend and over a
    /// holiday on the same date). At least one weekday must be a working
    /// day, so that counting always ends.
    pub fn new(
        weekend: impl IntoIterator<Item = Weekday>,
        holidays: impl IntoIterator<Item = Date>,
        extra_working: impl IntoIterator<Item = Date>,
    ) -> Result<Calendar, CalendarError> {
        let mut w: Vec<Weekday> = Vec::new();
        for d in weekend {
            if !w.contains(&d) {
                w.push(d);
            }
        }
        if w.len() >= 7 {
            return Err(CalendarError(
                "the weekend cannot be the whole week: at least one day must be a working day"
                    .into(),
            ));
        }
        Ok(Calendar {
            weekend: w,
            holidays: holidays.into_iter().collect(),
            extra_working: extra_working.into_iter().collect(),
        })
    }

    /// From the settings' text: weekday names (`"saturday"`, `"sun"`...)
    /// and dates `YYYY-MM-DD`; the first bad value is named in the error.
    pub fn from_settings(
        weekend: &[String],
        holidays: &[String],
        extra_working: &[String],
    ) -> Result<Calendar, CalendarError> {
        let weekend = weekend
            .iter()
            .map(|s| parse_weekday(s))
            .collect::<Result<Vec<_>, _>>()?;
        let dates = |list: &[String]| {
            list.iter()
                .map(|s| parse_date(s))
                .collect::<Result<Vec<_>, _>>()
        };
        Calendar::new(weekend, dates(holidays)?, dates(extra_working)?)
    }

    /// Whether `d` is a working day.
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.extra_working.contains(&d) {
            return true;
        }
        !(self.holidays.contains(&d) || self.weekend.contains(&d.weekday()))
    }

    /// The `n`th working day after `d` (`n` > 0), before it (`n` < 0), or
    /// `d` itself (`n` = 0). Saturates at the ends of the calendar.
    pub fn add_working_days(&self, d: Date, n: i64) -> Date {
        let mut cur = d;
        let mut left = n.unsigned_abs();
        while left > 0 {
            let next = if n > 0 {
                cur.next_day()
            } else {
                cur.previous_day()
            };
            let Some(next) = next else { return cur };
            cur = next;
            if self.is_working_day(cur) {
                left -= 1;
            }
        }
        cur
    }

    /// The working days from `from` to `to`: those in (`from`, `to`] when
    /// `to` is later, minus those in (`to`, `from`] when it is earlier, 0
    /// on the same day. "còn 3 ngày làm việc" is
    /// `working_days_between(today, due) == 3`; a negative value counts the
    /// working days past a deadline.
    pub fn working_days_between(&self, from: Date, to: Date) -> i64 {
        let (a, b, sign) = if to >= from {
            (from, to, 1)
        } else {
            (to, from, -1)
        };
        let mut n = 0i64;
        let mut cur = a;
        while cur < b {
            let Some(next) = cur.next_day() else { break };
            cur = next;
            if self.is_working_day(cur) {
                n += 1;
            }
        }
        sign * n
    }
}

/// `YYYY-MM-DD` as a date.
pub fn parse_date(s: &str) -> Result<Date, CalendarError> {
    let bad = || CalendarError(format!("{s:?} is not a date YYYY-MM-DD"));
    let t = s.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y) && digits(m) && digits(d)) {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    let d: u8 = d.parse().map_err(|_| bad())?;
    let m = Month::try_from(m).map_err(|_| bad())?;
    Date::from_calendar_date(y, m, d).map_err(|_| bad())
}

/// A weekday by its English name or its first three letters, any case.
pub fn parse_weekday(s: &str) -> Result<Weekday, CalendarError> {
    let t = s.trim().to_ascii_lowercase();
    let all = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    all.into_iter()
        .find(|w| {
            let name = w.to_string().to_ascii_lowercase();
            t == name || (t.len() == 3 && name.starts_with(&t))
        })
        .ok_or_else(|| {
            CalendarError(format!(
                "{s:?} is not a weekday (monday ... sunday, or mon ... sun)"
            ))
        })
}

/// The date `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Vietnam's offset (UTC+7, no daylight saving).
fn offset() -> time::UtcOffset {
    time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC)
}

/// The calendar date in Vietnam at Unix time `at`.
pub fn vn_date(at: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp(at)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset())
        .date()
}

/// The last second of `d` in Vietnam (23:59:59 UTC+7), Unix seconds.
pub fn vn_end_of_day(d: Date) -> i64 {
    d.with_hms(23, 59, 59)
        .map(|t| t.assume_offset(offset()).unix_timestamp())
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        parse_date(s).expect("date")
    }

    /// Tết 2026 as a province might configure it: Tuesday 17 February is
    /// the first day of the year; days off Saturday 14 to Sunday 22
    /// February; Saturday 28 February worked to make up for one of them.
    fn tet() -> Calendar {
        Calendar::from_settings(
            &["saturday".into(), "sun".into()],
            &[
                "2026-01-01".into(),
                "2026-02-16".into(),
                "2026-02-17".into(),
                "2026-02-18".into(),
                "2026-02-19".into(),
                "2026-02-20".into(),
            ],
            &["2026-02-28".into()],
        )
        .expect("calendar")
    }

    #[test]
    fn workdays_weekend_is_skipped() {
        let c = Calendar::default();
        // Friday 9 January 2026 + 5 working days: Friday 16.
        assert_eq!(c.add_working_days(d("2026-01-09"), 5), d("2026-01-16"));
        // Thursday + 1: Friday; Friday + 1: Monday.
        assert_eq!(c.add_working_days(d("2026-01-08"), 1), d("2026-01-09"));
        assert_eq!(c.add_working_days(d("2026-01-09"), 1), d("2026-01-12"));
        // A meeting on a Saturday: the next Monday is the first day.
        assert_eq!(c.add_working_days(d("2026-01-10"), 1), d("2026-01-12"));
        // Backwards: 3 working days before Tuesday 13 is Thursday 8.
        assert_eq!(c.add_working_days(d("2026-01-13"), -3), d("2026-01-08"));
        assert_eq!(c.add_working_days(d("2026-01-13"), 0), d("2026-01-13"));
        assert!(!c.is_working_day(d("2026-01-10")));
        assert!(!c.is_working_day(d("2026-01-11")));
        assert!(c.is_working_day(d("2026-01-12")));
    }

    #[test]
    fn workdays_tet_holidays_and_a_compensating_saturday() {
        let c = tet();
        // New Year's Day (Thursday) is off: Wednesday 31 Dec + 1 = Friday 2.
        assert_eq!(c.add_working_days(d("2025-12-31"), 1), d("2026-01-02"));
        // A meeting on Thursday 12 February: 5 working days after it skip
        // the weekend and the Tết week: Fri 13, Mon 23, Tue 24, Wed 25, Thu 26.
        assert_eq!(c.add_working_days(d("2026-02-12"), 5), d("2026-02-26"));
        // ... and the compensating Saturday 28 counts: from Monday 23, the
        // 5th working day is Saturday 28, the 6th Monday 2 March.
        assert_eq!(c.add_working_days(d("2026-02-23"), 5), d("2026-02-28"));
        assert_eq!(c.add_working_days(d("2026-02-23"), 6), d("2026-03-02"));
        assert_eq!(c.add_working_days(d("2026-02-24"), 4), d("2026-02-28"));
        assert!(c.is_working_day(d("2026-02-28")));
        assert!(!c.is_working_day(d("2026-03-01")));
        // Documents 3 working days before a meeting on Tuesday 24 February:
        // Mon 23, Fri 13, Thu 12 -> Thursday 12.
        assert_eq!(c.add_working_days(d("2026-02-24"), -3), d("2026-02-12"));
    }

    #[test]
    fn workdays_counting_left_and_overdue() {
        let c = tet();
        // From Friday 13 February to Thursday 26: Mon 23 .. Thu 26 = 4.
        assert_eq!(c.working_days_between(d("2026-02-13"), d("2026-02-26")), 4);
        assert_eq!(c.working_days_between(d("2026-02-26"), d("2026-02-26")), 0);
        // Past the deadline: negative.
        assert_eq!(c.working_days_between(d("2026-03-02"), d("2026-02-26")), -3);
        // Over a weekend only: Friday to Monday is 1.
        let plain = Calendar::default();
        assert_eq!(
            plain.working_days_between(d("2026-01-09"), d("2026-01-12")),
            1
        );
        assert_eq!(
            plain.working_days_between(d("2026-01-10"), d("2026-01-11")),
            0
        );
        // Adding then counting agree.
        for n in 0..40 {
            let from = d("2026-02-10");
            assert_eq!(c.working_days_between(from, c.add_working_days(from, n)), n);
        }
    }

    #[test]
    fn workdays_settings_are_checked() {
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("2026-2-3").is_err());
        assert!(parse_date("26-02-03").is_err());
        assert!(parse_date("2026-02-+3").is_err());
        assert_eq!(format_date(d(" 2026-02-03 ")), "2026-02-03");
        assert_eq!(parse_weekday("Friday"), Ok(Weekday::Friday));
        assert_eq!(parse_weekday("SAT"), Ok(Weekday::Saturday));
        assert!(parse_weekday("sa").is_err());
        assert!(parse_weekday("thứ bảy").is_err());
        let err = Calendar::from_settings(&[], &["2026-13-01".into()], &[]).unwrap_err();
        assert!(err.0.contains("2026-13-01"), "{err}");
        let week: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(Calendar::from_settings(&week, &[], &[]).is_err());
        // An empty weekend: every day works.
        let c = Calendar::from_settings(&[], &[], &[]).expect("calendar");
        assert_eq!(c.add_working_days(d("2026-01-09"), 2), d("2026-01-11"));
    }

    #[test]
    fn workdays_vn_dates() {
        // 2026-01-04 17:00 UTC is 2026-01-05 00:00 in Vietnam.
        assert_eq!(vn_date(1_767_546_000), d("2026-01-05"));
        assert_eq!(vn_date(1_767_545_999), d("2026-01-04"));
        assert_eq!(vn_end_of_day(d("2026-01-04")), 1_767_545_999);
    }
}
