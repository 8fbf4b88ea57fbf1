package cli

import (
	"context"
	"errors"
	"log/slog"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/server"
)

func runServe(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "serve", "[--config FILE] [--listen ADDR]")
	configPath := fs.String("config", env.Getenv("PAIRGATE_CONFIG"), "configuration `file` (YAML); default $PAIRGATE_CONFIG, else one profile \"default\" at $OPENCLAW_STATE_DIR or ~/.openclaw")
	listen := fs.String("listen", "", "listen `address`, overriding the configuration and $PAIRGATE_LISTEN (default "+config.DefaultListen+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath, env.Getenv)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))

	var profiles []*server.Profile
	defer func() {
		for _, p := range profiles {
			if err := p.Close(); err != nil {
				log.Error("closing profile", "profile", p.Config.Name, "err", err)
			}
		}
	}()
	for _, pc := range cfg.Profiles {
		p, err := server.OpenProfile(ctx, pc, log, nil)
		if err != nil {
			return err
		}
		profiles = append(profiles, p)
		log.Info("profile ready", "profile", pc.Name, "stateDir", pc.StateDir, "operatorToken", pc.OperatorTokenSource())
	}
	err = server.New(cfg, profiles, log, server.Options{Version: version()}).Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
