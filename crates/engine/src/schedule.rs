//! Bandwidth schedules and "pause all": the `[[options.schedule]]` rules as the configuration
//! holds them, and which rule is in force at a local time.
//!
//! It owns the rules' format and their reading of the clock, nothing else: applying a rule
//! (retuning the buckets, pausing the devices) is `bandwidth`'s. Pure functions of a
//! [`LocalTime`], so a test picks the time.

use serde::{Deserialize, Serialize};

/// A day of the week, as `days = ["mon", "tue"]` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun];

    /// The day with Monday 0.
    pub fn from_monday(n: u8) -> Self {
        Self::ALL[usize::from(n % 7)]
    }

    /// `mon`, as the configuration names it.
    pub fn name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][usize::from(self.index())]
    }

    fn index(self) -> u8 {
        self as u8
    }

    fn before(self) -> Self {
        Self::from_monday(self.index() + 6)
    }
}

/// A moment in local time, as a schedule reads it: the day, and seconds since local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub day: Day,
    /// 0..86400 (a leap second counts as the last second).
    pub second: u32,
}

impl LocalTime {
    /// `day` at `hh:mm:ss`.
    pub fn at(day: Day, hh: u32, mm: u32, ss: u32) -> Self {
        Self { day, second: (hh * 3600 + mm * 60 + ss).min(86_399) }
    }

    fn minute(self) -> u16 {
        (self.second / 60) as u16
    }
}

/// A time of day, `"HH:MM"` in the configuration: minutes since midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00 to 23:59)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 || s.len() > 5 {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> Self {
        t.to_string()
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// One `[[options.schedule]]` entry: on `days` (every day if empty), from `from` to `to` local
/// time, either the limits given (each 0 = unlimited) replace the `[options]` ones, or, with
/// `pause = true`, every device is paused. A window whose `to` is not after its `from` runs past
/// midnight into the next day (`from = "22:00"`, `to = "06:00"`); `days` name the day it
/// starts. Equal times make a whole day. The first rule whose window holds the time is in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Day>,
    #[schema(value_type = String)]
    pub from: TimeOfDay,
    #[schema(value_type = String)]
    pub to: TimeOfDay,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// KiB/s sent in the window; 0 = unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_send_kibps: u64,
    /// KiB/s received in the window; 0 = unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_recv_kibps: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ScheduleRule {
    /// Whether the rule makes sense on its own; the sentence says why not.
    pub fn check(&self) -> Result<(), String> {
        if self.pause && (self.max_send_kibps != 0 || self.max_recv_kibps != 0) {
            return Err(format!(
                "the rule {} pauses, so it cannot also set limits: give either pause = true or limits",
                self.window()
            ));
        }
        Ok(())
    }

    fn on(&self, day: Day) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// Whether the window holds `t`.
    pub fn holds(&self, t: LocalTime) -> bool {
        let (m, from, to) = (t.minute(), self.from.0, self.to.0);
        if from < to {
            self.on(t.day) && (from..to).contains(&m)
        } else {
            (self.on(t.day) && m >= from) || (self.on(t.day.before()) && m < to)
        }
    }

    /// `mon,tue 09:00-17:00` (`every day` when no day is named).
    pub fn window(&self) -> String {
        let days = if self.days.is_empty() {
            "every day".to_owned()
        } else {
            let names: Vec<&str> = self.days.iter().map(|d| d.name()).collect();
            names.join(",")
        };
        format!("{days} {}-{}", self.from, self.to)
    }
}

/// The rule in force at `t`: its position in `rules` (the first whose window holds `t`).
pub fn in_force(rules: &[ScheduleRule], t: LocalTime) -> Option<usize> {
    rules.iter().position(|r| r.holds(t))
}

/// "Pause all" as the user asked for it: until a moment, or until resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PauseAll {
    /// Until `peerfold resume`.
    UntilResumed,
    /// Until this Unix time (seconds), or `peerfold resume` before it.
    Until(u64),
}

impl PauseAll {
    /// Whether it still holds at Unix time `now`.
    pub fn holds(self, now: u64) -> bool {
        match self {
            Self::UntilResumed => true,
            Self::Until(t) => now < t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(days: &[Day], from: &str, to: &str) -> ScheduleRule {
        ScheduleRule {
            days: days.to_vec(),
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            pause: false,
            max_send_kibps: 100,
            max_recv_kibps: 200,
        }
    }

    #[test]
    fn a_window_holds_from_its_start_to_before_its_end_on_its_days() {
        let office = rule(&[Day::Mon, Day::Fri], "09:00", "17:00");
        assert!(!office.holds(LocalTime::at(Day::Mon, 8, 59, 59)));
        assert!(office.holds(LocalTime::at(Day::Mon, 9, 0, 0)));
        assert!(office.holds(LocalTime::at(Day::Fri, 16, 59, 59)));
        assert!(!office.holds(LocalTime::at(Day::Fri, 17, 0, 0)));
        assert!(!office.holds(LocalTime::at(Day::Tue, 12, 0, 0)));
        assert_eq!(office.window(), "mon,fri 09:00-17:00");
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let night = rule(&[Day::Sun], "22:00", "06:00");
        assert!(night.holds(LocalTime::at(Day::Sun, 23, 0, 0)));
        assert!(night.holds(LocalTime::at(Day::Mon, 5, 59, 0)));
        assert!(!night.holds(LocalTime::at(Day::Mon, 6, 0, 0)));
        assert!(!night.holds(LocalTime::at(Day::Sat, 23, 0, 0)));
        assert!(!night.holds(LocalTime::at(Day::Sun, 5, 0, 0)), "Saturday's night is not Sunday's");
        let all_day = rule(&[], "00:00", "00:00");
        assert!(all_day.holds(LocalTime::at(Day::Wed, 0, 0, 0)));
        assert!(all_day.holds(LocalTime::at(Day::Wed, 23, 59, 59)));
        assert_eq!(all_day.window(), "every day 00:00-00:00");
    }

    #[test]
    fn the_first_rule_that_holds_is_in_force() {
        let rules = [rule(&[Day::Sat], "00:00", "00:00"), rule(&[], "09:00", "17:00")];
        assert_eq!(in_force(&rules, LocalTime::at(Day::Sat, 10, 0, 0)), Some(0));
        assert_eq!(in_force(&rules, LocalTime::at(Day::Mon, 10, 0, 0)), Some(1));
        assert_eq!(in_force(&rules, LocalTime::at(Day::Mon, 18, 0, 0)), None);
    }

    #[test]
    fn times_and_rules_are_checked() {
        for bad in ["24:00", "9", "09:60", "-1:00", "09:000", ""] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
        }
        assert_eq!("9:05".parse::<TimeOfDay>().unwrap().to_string(), "09:05");
        let mut r = rule(&[], "09:00", "17:00");
        r.pause = true;
        assert!(r.check().is_err(), "pause with limits");
        r.max_send_kibps = 0;
        r.max_recv_kibps = 0;
        assert!(r.check().is_ok());
        let toml: ScheduleRule =
            toml::from_str("days = [\"sat\", \"sun\"]\nfrom = \"08:00\"\nto = \"20:00\"\npause = true")
                .unwrap();
        assert!(toml.pause && toml.days == [Day::Sat, Day::Sun]);
    }

    #[test]
    fn a_pause_holds_until_its_time() {
        assert!(PauseAll::UntilResumed.holds(u64::MAX));
        assert!(PauseAll::Until(100).holds(99));
        assert!(!PauseAll::Until(100).holds(100));
    }
}
