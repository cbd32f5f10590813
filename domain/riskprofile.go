package domain

// RiskProfile names the rule set a user's executions are decided under
// (DESIGN §8); the rules are data in risk_profiles.go (RulesFor).
type RiskProfile string

const (
	// RiskProfileModel2 is the strict profile, and everyone's default.
	RiskProfileModel2 RiskProfile = "model2"
	// RiskProfileLoose is the permissive profile.
	RiskProfileLoose RiskProfile = "loose"
)

// DefaultRiskProfile is what a new user starts with and what a user no
// longer named by configuration falls back to: the strict one.
const DefaultRiskProfile = RiskProfileModel2

// ParseRiskProfile validates a profile name.
func ParseRiskProfile(s string) (RiskProfile, error) {
	switch p := RiskProfile(s); p {
	case RiskProfileModel2, RiskProfileLoose:
		return p, nil
	}
	return "", Errorf(KindInvalid, "invalid_risk_profile", "risk profile must be %q or %q", RiskProfileModel2, RiskProfileLoose)
}

// ShadowOf is the profile an order decided under p is shadow-evaluated
// under: the other built-in one. An unknown name counts as the default.
func ShadowOf(p RiskProfile) RiskProfile {
	if p == RiskProfileLoose {
		return RiskProfileModel2
	}
	return RiskProfileLoose
}
