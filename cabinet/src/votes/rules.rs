//! How a poll's result is decided: [`decide`], a pure function of the
//! counts, the rule, the attendance and the chair's choice (no storage).
//!
//! The rules (Law on Organisation of Local Government; Decrees 314/2025 and
//! 315/2025 on the committees' working rules, see `notes/meeting-rules.md`):
//! - [`VoteRule::AllMembersMajority`]: more than half of ALL the committee's
//!   members vote for (`needed = base / 2 + 1`, base = committee members).
//!   A tie, exactly half of the base for (`for * 2 == base`), goes to the
//!   side the chair voted for: it passes iff the chair voted for.
//! - [`VoteRule::PresentMajority`]: the same with base = members present.
//! - [`VoteRule::TwoThirdsAll`]: at least two thirds of all members vote for
//!   (`needed = ceil(2 * base / 3)`); no tie rule.
//! - Quorum: at least `ceil(committee_members * num / den)` members present
//!   (two thirds by default); without it nothing passes.
//! - No committee (0 members): nothing passes.
//!
//! Abstentions ("không biểu quyết") and members who did not vote count
//! against a motion only by not being "for": every base counts members, not
//! ballots. All arithmetic is in `u64`, so no input overflows.

use crate::{Choice, Outcome, Tally, VoteRule};

/// `u64` back to `u32`, saturating (every result here is at most a `u32`
/// input, so this never saturates in practice).
fn small(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Members needed present for `committee_members` under the quorum
/// `num / den` (a denominator of 0 is read as 1).
pub fn quorum_needed(committee_members: u32, quorum: (u32, u32)) -> u32 {
    let (num, den) = quorum;
    let den = u64::from(den.max(1));
    small((u64::from(committee_members) * u64::from(num)).div_ceil(den))
}

/// The result of a poll under `rule`.
///
/// `eligible` is reported, not used (the bases are members, not eligible
/// voters). `chair_choice` is the chair's ballot in a named poll; pass
/// `None` for a secret poll (or a chair who did not vote): then a tie
/// never passes and `tie_broken_by_chair` is false.
pub fn decide(
    rule: VoteRule,
    tally: Tally,
    eligible: u32,
    committee_members: u32,
    present_members: u32,
    quorum: (u32, u32),
    chair_choice: Option<Choice>,
) -> Outcome {
    let base = match rule {
        VoteRule::AllMembersMajority | VoteRule::TwoThirdsAll => committee_members,
        VoteRule::PresentMajority => present_members,
    };
    let b = u64::from(base);
    let needed = match rule {
        VoteRule::AllMembersMajority | VoteRule::PresentMajority => b / 2 + 1,
        VoteRule::TwoThirdsAll => (2 * b).div_ceil(3),
    };
    let quorum_needed = quorum_needed(committee_members, quorum);
    let quorum_met = committee_members > 0 && present_members >= quorum_needed;
    let for_ = u64::from(tally.for_);
    let tie_rule = matches!(
        rule,
        VoteRule::AllMembersMajority | VoteRule::PresentMajority
    );
    let tie = tie_rule && b > 0 && for_ * 2 == b;
    let tie_broken_by_chair =
        quorum_met && tie && matches!(chair_choice, Some(Choice::For | Choice::Against));
    let passed =
        quorum_met && base > 0 && (for_ >= needed || (tie && chair_choice == Some(Choice::For)));
    Outcome {
        rule,
        tally,
        voted: tally.total(),
        eligible,
        committee_members,
        present_members,
        base,
        needed: small(needed),
        quorum_needed,
        quorum_met,
        tie_broken_by_chair,
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_THIRDS: (u32, u32) = (2, 3);
    const RULES: [VoteRule; 3] = [
        VoteRule::AllMembersMajority,
        VoteRule::PresentMajority,
        VoteRule::TwoThirdsAll,
    ];
    const CHAIRS: [Option<Choice>; 4] = [
        None,
        Some(Choice::For),
        Some(Choice::Against),
        Some(Choice::Abstain),
    ];

    fn t(for_: u32, against: u32, abstain: u32) -> Tally {
        Tally {
            for_,
            against,
            abstain,
        }
    }

    /// `decide` with everyone present and eligible.
    fn all_here(rule: VoteRule, tally: Tally, members: u32, chair: Option<Choice>) -> Outcome {
        decide(rule, tally, members, members, members, TWO_THIRDS, chair)
    }

    #[test]
    fn all_members_majority() {
        let r = VoteRule::AllMembersMajority;
        // 9 members: 5 pass, 4 do not, whoever else voted or not.
        let o = all_here(r, t(5, 4, 0), 9, None);
        assert!(o.passed);
        assert_eq!((o.base, o.needed, o.voted, o.eligible), (9, 5, 9, 9));
        assert!(!o.tie_broken_by_chair);
        assert!(!all_here(r, t(4, 0, 0), 9, Some(Choice::For)).passed);
        assert!(!all_here(r, t(4, 5, 0), 9, None).passed);
        // More for than against among voters is not enough: all members count.
        let o = decide(r, t(4, 1, 0), 9, 9, 7, TWO_THIRDS, Some(Choice::For));
        assert!(o.quorum_met && !o.passed);
        assert_eq!(o.needed, 5);
    }

    #[test]
    fn abstentions_count_as_not_for() {
        for r in RULES {
            let o = all_here(r, t(4, 0, 5), 9, Some(Choice::For));
            assert!(!o.passed, "{r}: 4 for, 5 abstain of 9");
            assert_eq!(o.voted, 9);
            assert_eq!(o.tally, t(4, 0, 5));
        }
        // Everyone abstains: nothing passes, no tie.
        for r in RULES {
            let o = all_here(r, t(0, 0, 10), 10, Some(Choice::Abstain));
            assert!(!o.passed && !o.tie_broken_by_chair, "{r}");
        }
    }

    #[test]
    fn ties_go_to_the_chairs_side() {
        for r in [VoteRule::AllMembersMajority, VoteRule::PresentMajority] {
            // 10 members, exactly half for.
            for (chair, passed, broken) in [
                (Some(Choice::For), true, true),
                (Some(Choice::Against), false, true),
                (Some(Choice::Abstain), false, false),
                (None, false, false),
            ] {
                let o = all_here(r, t(5, 5, 0), 10, chair);
                assert_eq!(o.needed, 6, "{r}");
                assert_eq!(
                    (o.passed, o.tie_broken_by_chair),
                    (passed, broken),
                    "{r}, chair {chair:?}"
                );
                // Half for with the rest abstaining or absent is a tie too.
                let o = all_here(r, t(5, 0, 2), 10, chair);
                assert_eq!((o.passed, o.tie_broken_by_chair), (passed, broken));
            }
            // An odd base has no tie.
            for chair in CHAIRS {
                let o = all_here(r, t(4, 5, 0), 9, chair);
                assert!(!o.passed && !o.tie_broken_by_chair);
            }
            // A tie without quorum: nothing passes, nothing broken.
            let o = decide(r, t(5, 5, 0), 10, 10, 6, TWO_THIRDS, Some(Choice::For));
            assert!(!o.quorum_met && !o.passed && !o.tie_broken_by_chair);
        }
        // Present base: 12 members, 10 present, 5 for is a tie of the present.
        let o = decide(
            VoteRule::PresentMajority,
            t(5, 5, 0),
            12,
            12,
            10,
            TWO_THIRDS,
            Some(Choice::For),
        );
        assert!(o.passed && o.tie_broken_by_chair);
        assert_eq!(o.base, 10);
        // ... but not of all members.
        let o = decide(
            VoteRule::AllMembersMajority,
            t(5, 5, 0),
            12,
            12,
            10,
            TWO_THIRDS,
            Some(Choice::For),
        );
        assert!(!o.passed && !o.tie_broken_by_chair);
        assert_eq!((o.base, o.needed), (12, 7));
    }

    #[test]
    fn two_thirds_has_no_tie_rule() {
        let o = all_here(VoteRule::TwoThirdsAll, t(3, 3, 0), 6, Some(Choice::For));
        assert!(!o.passed && !o.tie_broken_by_chair);
        assert_eq!(o.needed, 4);
        assert!(all_here(VoteRule::TwoThirdsAll, t(4, 2, 0), 6, None).passed);
    }

    #[test]
    fn quorum_missing_passes_nothing() {
        // 9 members need 6 present; with 5, even 5 "for" (a majority of all) fail.
        for r in RULES {
            let o = decide(r, t(5, 0, 0), 9, 9, 5, TWO_THIRDS, Some(Choice::For));
            assert_eq!(o.quorum_needed, 6);
            assert!(!o.quorum_met && !o.passed, "{r}");
            let o = decide(r, t(9, 0, 0), 9, 9, 6, TWO_THIRDS, Some(Choice::For));
            assert!(o.quorum_met && o.passed, "{r}");
        }
        // Another quorum: half (a denominator of 0 reads as 1).
        assert_eq!(quorum_needed(9, (1, 2)), 5);
        assert_eq!(quorum_needed(9, (1, 0)), 9);
        assert_eq!(quorum_needed(9, (0, 3)), 0);
    }

    #[test]
    fn all_members_base_versus_present_base() {
        // 15 members, 10 present (quorum 10 met), 6 for, 4 against.
        let tally = t(6, 4, 0);
        let all = decide(
            VoteRule::AllMembersMajority,
            tally,
            15,
            15,
            10,
            TWO_THIRDS,
            None,
        );
        let present = decide(
            VoteRule::PresentMajority,
            tally,
            15,
            15,
            10,
            TWO_THIRDS,
            None,
        );
        let two_thirds = decide(VoteRule::TwoThirdsAll, tally, 15, 15, 10, TWO_THIRDS, None);
        assert_eq!((all.base, all.needed, all.passed), (15, 8, false));
        assert_eq!(
            (present.base, present.needed, present.passed),
            (10, 6, true)
        );
        assert_eq!(
            (two_thirds.base, two_thirds.needed, two_thirds.passed),
            (15, 10, false)
        );
        for o in [all, present, two_thirds] {
            assert_eq!((o.committee_members, o.present_members), (15, 10));
            assert_eq!(o.quorum_needed, 10);
            assert!(o.quorum_met);
        }
        // Nobody present: the present base is 0, nothing passes.
        let o = decide(VoteRule::PresentMajority, t(0, 0, 0), 5, 5, 0, (0, 1), None);
        assert!(o.quorum_met && !o.passed);
        assert_eq!((o.base, o.needed), (0, 1));
    }

    #[test]
    fn against_brute_force_definitions() {
        for base in 1..=30u32 {
            // Two thirds: the least n with 3n >= 2 * base.
            let least = (0..=base).find(|n| 3 * n >= 2 * base).expect("exists");
            // Majority: the least n with 2n > base.
            let majority = (0..=base).find(|n| 2 * n > base).expect("exists");
            for for_ in 0..=base {
                let rest = base - for_;
                for chair in CHAIRS {
                    let o = all_here(VoteRule::TwoThirdsAll, t(for_, rest, 0), base, chair);
                    assert_eq!(o.needed, least, "two thirds of {base}");
                    assert_eq!(o.passed, 3 * for_ >= 2 * base, "{for_} of {base}");
                    assert!(!o.tie_broken_by_chair);
                    for r in [VoteRule::AllMembersMajority, VoteRule::PresentMajority] {
                        let o = all_here(r, t(for_, 0, rest), base, chair);
                        let tie = 2 * for_ == base;
                        assert_eq!(o.needed, majority, "{r} of {base}");
                        assert_eq!(
                            o.passed,
                            2 * for_ > base || (tie && chair == Some(Choice::For)),
                            "{r}: {for_} of {base}, chair {chair:?}"
                        );
                        assert_eq!(
                            o.tie_broken_by_chair,
                            tie && matches!(chair, Some(Choice::For | Choice::Against))
                        );
                    }
                }
            }
            // The quorum: the least present with 3p >= 2 * base.
            for present in 0..=base {
                let o = decide(
                    VoteRule::AllMembersMajority,
                    t(base, 0, 0),
                    base,
                    base,
                    present,
                    TWO_THIRDS,
                    None,
                );
                assert_eq!(o.quorum_needed, least);
                assert_eq!(o.quorum_met, 3 * present >= 2 * base);
                assert_eq!(o.passed, o.quorum_met);
            }
        }
    }

    #[test]
    fn zero_members_decide_nothing() {
        for r in RULES {
            for chair in CHAIRS {
                for quorum in [(2, 3), (0, 1), (0, 0), (u32::MAX, 0)] {
                    let o = decide(r, t(0, 0, 0), 0, 0, 0, quorum, chair);
                    assert!(!o.passed && !o.quorum_met && !o.tie_broken_by_chair, "{r}");
                    assert_eq!((o.base, o.quorum_needed), (0, 0));
                }
                // Ballots without a committee (bad input) still decide nothing.
                let o = decide(r, t(7, 0, 0), 7, 0, 7, TWO_THIRDS, chair);
                assert!(!o.passed, "{r}");
            }
        }
    }

    #[test]
    fn large_numbers_do_not_overflow() {
        let m = u32::MAX;
        let o = decide(
            VoteRule::TwoThirdsAll,
            t(m, m, m),
            m,
            m,
            m,
            (m, m),
            Some(Choice::For),
        );
        assert_eq!(o.needed, 2_863_311_530);
        assert_eq!(o.quorum_needed, m);
        assert_eq!(o.voted, m, "saturates");
        assert!(o.passed);
        let o = all_here(VoteRule::AllMembersMajority, t(m / 2, 0, 0), m, None);
        assert_eq!(o.needed, m / 2 + 1);
        assert!(!o.passed && !o.tie_broken_by_chair, "odd base: no tie");
        let even = m - 1;
        let o = all_here(
            VoteRule::PresentMajority,
            t(even / 2, even / 2, 0),
            even,
            Some(Choice::For),
        );
        assert!(o.passed && o.tie_broken_by_chair);
        // A quorum fraction above 1 asks for more than the committee.
        assert_eq!(quorum_needed(m, (m, 1)), m, "saturates");
        assert_eq!(quorum_needed(3, (m, 1)), m);
        assert_eq!(quorum_needed(m, (2, 3)), 2_863_311_530);
    }

    #[test]
    fn wire_names() {
        assert_eq!(
            serde_json::to_value(t(1, 2, 3)).expect("json"),
            serde_json::json!({"for": 1, "against": 2, "abstain": 3})
        );
        let o = all_here(VoteRule::AllMembersMajority, t(5, 4, 0), 9, None);
        let v = serde_json::to_value(o).expect("json");
        assert_eq!(v["rule"], "all_members_majority");
        assert_eq!(v["tally"]["for"], 5);
        let back: Outcome = serde_json::from_value(v).expect("back");
        assert_eq!(back, o);
        let names: Vec<&str> = RULES.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["all_members_majority", "present_majority", "two_thirds_all"]
        );
        for r in RULES {
            assert_eq!(r.as_str().parse::<VoteRule>().expect("parse"), r);
            assert_eq!(serde_json::to_value(r).expect("json"), r.as_str());
        }
        for c in Choice::ALL {
            assert_eq!(c.as_str().parse::<Choice>().expect("parse"), *c);
            assert_eq!(serde_json::to_value(c).expect("json"), c.as_str());
        }
        assert_eq!(
            Choice::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            ["for", "against", "abstain"]
        );
        assert!("maybe".parse::<Choice>().is_err());
    }
}
