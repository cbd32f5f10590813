package main

import "time"

// systemClock is the app.Clock of a running service: the machine's time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
