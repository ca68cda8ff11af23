//! When a pending approval is nudged: the rule, without time or storage.

use chrono::{DateTime, Duration, Utc};

/// The most nudges one approval gets: a reminder to its approvers, then escalations to the
/// admins. After that the request waits for people, not for more mail.
pub const MAX_NUDGES: u32 = 3;

/// What is due for a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nudge {
    /// Remind the approvers still pending.
    Remind,
    /// Remind them again and tell the admins.
    Escalate,
}

/// The nudge due for an approval opened at `opened_at`, reminded `reminder_count` times
/// (last at `last_reminder_at`), when each step waits `after` (`approval.escalation.hours`).
pub fn due_nudge(
    now: DateTime<Utc>,
    opened_at: DateTime<Utc>,
    reminder_count: u32,
    last_reminder_at: Option<DateTime<Utc>>,
    after: Duration,
) -> Option<Nudge> {
    if reminder_count >= MAX_NUDGES || after <= Duration::zero() {
        return None;
    }
    let since = last_reminder_at.unwrap_or(opened_at);
    if now - since < after {
        return None;
    }
    Some(if reminder_count == 0 {
        Nudge::Remind
    } else {
        Nudge::Escalate
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time") + Duration::hours(hours)
    }

    #[test]
    fn a_fresh_approval_waits() {
        assert_eq!(due_nudge(at(47), at(0), 0, None, Duration::hours(48)), None);
    }

    #[test]
    fn first_the_approvers_are_reminded_then_the_admins_told() {
        let after = Duration::hours(48);
        assert_eq!(
            due_nudge(at(48), at(0), 0, None, after),
            Some(Nudge::Remind)
        );
        assert_eq!(due_nudge(at(60), at(0), 1, Some(at(48)), after), None);
        assert_eq!(
            due_nudge(at(96), at(0), 1, Some(at(48)), after),
            Some(Nudge::Escalate)
        );
    }

    #[test]
    fn nudging_stops_after_the_last_escalation_or_when_disabled() {
        assert_eq!(
            due_nudge(
                at(999),
                at(0),
                MAX_NUDGES,
                Some(at(144)),
                Duration::hours(48)
            ),
            None
        );
        assert_eq!(due_nudge(at(999), at(0), 0, None, Duration::zero()), None);
    }
}
