package domain

// KillSwitchStream is the stream of the risk kill switch's changes.
const KillSwitchStream = "risk-kill-switch"

const killSwitchEventsVersion = 1

// KillSwitchChanged is the payload of both kill switch events.
type KillSwitchChanged struct {
	Reason string `json:"reason"`
}

// KillSwitch is the risk kill switch: while it is engaged every order is
// rejected under every profile (check RISK_KILL_SWITCH), so nothing is
// sent to an exchange, until an administrator releases it.
type KillSwitch struct {
	engaged bool
	reason  string
	version int64 // of KillSwitchStream
}

// RestoreKillSwitch rebuilds the switch from its stored state.
func RestoreKillSwitch(engaged bool, reason string, version int64) KillSwitch {
	return KillSwitch{engaged: engaged, reason: reason, version: version}
}

func (k KillSwitch) Engaged() bool  { return k.engaged }
func (k KillSwitch) Reason() string { return k.reason }

// Version is the version of KillSwitchStream this state is at.
func (k KillSwitch) Version() int64 { return k.version }

// Set moves the switch to engaged, for reason, and returns the event that
// records it; none when the switch is already there (setting it again is
// not a change, and the first reason stands).
func (k KillSwitch) Set(engaged bool, reason string) (KillSwitch, *Event, error) {
	reason, err := parseReason(reason)
	if err != nil {
		return k, nil, err
	}
	if engaged == k.engaged {
		return k, nil, nil
	}
	typ := EventKillSwitchReleased
	if engaged {
		typ = EventKillSwitchEngaged
	}
	return KillSwitch{engaged: engaged, reason: reason, version: k.version + 1},
		&Event{Type: typ, SchemaVersion: killSwitchEventsVersion, Data: KillSwitchChanged{Reason: reason}}, nil
}

// Halt applies the kill switch to r: engaged halts every order.
func (r RiskRules) Halt(engaged bool) RiskRules {
	r.Halted = r.Halted || engaged
	return r
}
