package app

import (
	"context"
	"crypto/rand"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/domain"
)

// CreateUser creates an account. With no Password, a strong one is
// generated and returned once.
type CreateUser struct {
	Email    string
	Role     string
	Password domain.Secret
}

// CreatedUser is the new account's id and, when it was generated, its
// password (shown once, stored only as a hash).
type CreatedUser struct {
	ID                string
	Email             string
	GeneratedPassword domain.Secret
}

// CreateUserHandler creates users (CLI, dev seeding).
type CreateUserHandler struct {
	users  UserRepository
	hasher PasswordHasher
}

func NewCreateUserHandler(users UserRepository, hasher PasswordHasher) *CreateUserHandler {
	return &CreateUserHandler{users: users, hasher: hasher}
}

func (h *CreateUserHandler) Handle(ctx context.Context, cmd CreateUser) (CreatedUser, error) {
	email, err := domain.ParseEmail(cmd.Email)
	if err != nil {
		return CreatedUser{}, err
	}
	role, err := domain.ParseRole(cmd.Role)
	if err != nil {
		return CreatedUser{}, err
	}
	password, generated, err := passwordOrGenerated(cmd.Password)
	if err != nil {
		return CreatedUser{}, err
	}
	hash, err := h.hasher.Hash(ctx, password)
	if err != nil {
		return CreatedUser{}, err
	}
	u, err := domain.NewUser(uuid.NewString(), email, role)
	if err != nil {
		return CreatedUser{}, err
	}
	if err := h.users.Create(ctx, u, Credentials{PasswordHash: hash}); err != nil {
		return CreatedUser{}, err
	}
	return CreatedUser{ID: u.ID(), Email: email.String(), GeneratedPassword: generated}, nil
}

// passwordOrGenerated checks p against the policy or, when p is empty,
// generates one (26 random base32 characters: 130 bits) and returns it as
// generated too, to be shown once.
func passwordOrGenerated(p domain.Secret) (password, generated domain.Secret, err error) {
	if p.IsZero() {
		generated = domain.NewSecret(rand.Text())
		p = generated
	}
	if password, err = domain.NewPassword(p.Reveal()); err != nil {
		return domain.Secret{}, domain.Secret{}, err
	}
	return password, generated, nil
}
