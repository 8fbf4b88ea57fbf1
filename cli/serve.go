package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db/replica"
	"github.com/pairgate/pairgate/server"
)

func runServe(ctx context.Context, env Env, args []string) (err error) {
	fs := newFlags(env, "serve", "[--config FILE] [--listen ADDR]")
	configPath := fs.String("config", env.Getenv("PAIRGATE_CONFIG"), "configuration `file` (YAML); default $PAIRGATE_CONFIG, else one profile \"default\" at $OPENCLAW_STATE_DIR or ~/.openclaw")
	listen := fs.String("listen", "", "listen `address`, overriding the configuration and $PAIRGATE_LISTEN (default "+config.DefaultListen+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *listen != "" {
		_, port, err := net.SplitHostPort(*listen)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return &usageError{msg: fmt.Sprintf("serve: --listen %q is not a host:port address; write e.g. --listen 127.0.0.1:18789", *listen)}
		}
	}
	if *configPath != "" {
		if _, err := os.Stat(*configPath); err != nil {
			return &config.Error{File: *configPath, Problem: "cannot be read (" + errors.Unwrap(err).Error() + ")", Fix: "give the path of an existing configuration file with --config or $PAIRGATE_CONFIG, or neither for the default profile"}
		}
	}
	cfg, err := config.LoadServing(*configPath, env.Getenv)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	// A taken address fails now, before any state directory is touched.
	if err := addressesFree(cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	if dir := env.Getenv("OPENCLAW_STATE_DIR"); *configPath != "" && dir != "" &&
		!slices.ContainsFunc(cfg.Profiles, func(p config.Profile) bool {
			return config.SameDir(p.StateDir, config.ResolveStateDir(dir, "", env.Getenv))
		}) {
		// With a file, the file places every profile; the variable,
		// which OpenClaw and the CLI follow, moves none of them.
		log.Warn("$OPENCLAW_STATE_DIR names a directory no profile of the configuration serves: each profile is at its stateDir in the file (without one: ~/.openclaw for default, ~/.openclaw-NAME for the others)", "OPENCLAW_STATE_DIR", dir, "config", *configPath)
	}

	if err := replica.CheckClients(ctx, cfg.Profiles, *configPath); err != nil {
		return err
	}

	// Replication stops after the profiles closed (deferred first, run
	// last): its final sync must not hold the files under their store.
	var replicator *replica.Replicator
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := replicator.Close(closeCtx); cerr != nil && err == nil {
			err = fmt.Errorf("replication: the final sync failed (%w): the replica may lack the last changes; start the server again to send them before moving a profile", cerr)
		}
	}()
	var profiles []*server.Profile
	defer func() {
		// Close lets a running write end (a request's, after the HTTP
		// shutdown gave up on it).
		server.WarnStalledWrites(log, profiles)
		for _, p := range profiles {
			if err := p.Close(); err != nil {
				log.Error("closing profile", "profile", p.Config.Name, "err", err)
			}
		}
	}()
	for _, pc := range cfg.Profiles {
		if _, err := replica.RestoreIfMissing(ctx, pc, log); err != nil {
			return err
		}
		p, err := server.OpenProfile(ctx, pc, log, nil)
		if err != nil {
			return err
		}
		profiles = append(profiles, p)
		log.Info("profile ready", "profile", pc.Name, "stateDir", pc.StateDir, "operatorToken", pc.OperatorTokenSource())
	}
	if replicator, err = replica.Start(ctx, cfg.Profiles, log, replica.Options{ConfigFile: *configPath}); err != nil {
		return err
	}
	err = server.New(cfg, profiles, log, server.Options{Version: version(), Replication: replicator.Status}).Run(ctx)
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w; stop the other server, or choose another address with --listen or $PAIRGATE_LISTEN", err)
	}
	return err
}

// addressesFree checks that every listen address can be bound, so that a
// port in use is reported before the profiles' state directories are
// opened. (The real bind follows; this check only moves the usual failure
// earlier and explains it.)
func addressesFree(cfg config.Config) error {
	addrs := []string{cfg.Listen}
	for _, p := range cfg.Profiles {
		if p.Listen != "" {
			addrs = append(addrs, p.Listen)
		}
	}
	for i, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			// --listen and $PAIRGATE_LISTEN move the main address only;
			// a profile's own is its listen key.
			fix := "--listen or $PAIRGATE_LISTEN"
			if i > 0 {
				fix = "the profile's listen in the configuration"
				for _, p := range cfg.Profiles {
					if p.Listen == addr {
						fix = fmt.Sprintf("profile %q's listen in the configuration", p.Name)
						break
					}
				}
			}
			return listenFailed(addr, err, fix)
		}
		l.Close()
	}
	return nil
}

func listenFailed(addr string, err error, fix string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("cannot listen on %s: the address is in use (another pairgate, or another program); stop it, or choose another address with %s", addr, fix)
	}
	return fmt.Errorf("cannot listen on %s: %v; choose another address with %s", addr, err, fix)
}
