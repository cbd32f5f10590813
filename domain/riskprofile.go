package domain

// RiskProfile names the rule set a user's executions are decided under
// (DESIGN §8). The rules themselves come later; the name is bound to users
// now so that every user always has one.
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
