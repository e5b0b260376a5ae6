// Command lake-ferretdb serves the MongoDB wire protocol on top of PostgreSQL by
// embedding FerretDB v1 as a library (the plain `go install` binary refuses to start
// without build-time version data). Built and started by `lake up` (infra/services.py):
//
//	go build -o ~/.cache/lake/bin/lake-ferretdb . && lake-ferretdb -listen 127.0.0.1:27017 \
//	    -postgresql-url postgres://ferretdb:PASSWORD@127.0.0.1:5432/ferretdb
//
// FerretDB itself listens only on a private Unix socket; clients reach it through
// the small rewriting proxy in proxy.go, which exists so that Trino can query it.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve the MongoDB wire protocol on")
	pgURL := flag.String("postgresql-url", os.Getenv("LAKE_FERRETDB_POSTGRESQL_URL"), "PostgreSQL backend URL")
	socket := flag.String("internal-socket", "", "Unix socket path for the internal FerretDB listener (default: in a fresh private temp dir)")
	debug := flag.Bool("debug", false, "log every command")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(logger, *listen, *pgURL, *socket); err != nil {
		logger.Error("lake-ferretdb failed", "error", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger, listen, pgURL, socket string) error {
	if pgURL == "" {
		return errors.New("no PostgreSQL URL: pass -postgresql-url or set LAKE_FERRETDB_POSTGRESQL_URL")
	}

	if socket == "" {
		// A 0700 directory keeps other local users off the unproxied socket.
		dir, err := os.MkdirTemp("", "lake-ferretdb-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		socket = filepath.Join(dir, "ferretdb.sock")
	} else {
		// A socket left behind by a killed instance would make the listen fail;
		// the path is ours alone, so removing it is safe.
		if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
			return err
		}
	}

	// Bind the public port first so a busy port fails before FerretDB starts.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{Unix: socket},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: pgURL,
	})
	if err != nil {
		ln.Close()
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ferretDone := make(chan struct{})
	go func() {
		defer close(ferretDone)
		f.Run(ctx) // always returns nil, once ctx is done and its connections are closed
	}()

	var d net.Dialer
	p := &proxy{
		dial:   func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", socket) },
		logger: logger,
	}
	logger.Info("serving MongoDB wire protocol", "listen", ln.Addr().String(), "internal_socket", socket)
	err = p.serve(ctx, ln) // returns after SIGTERM/SIGINT, with all proxied connections closed
	stop()                 // stops FerretDB too if serve failed on its own
	<-ferretDone
	logger.Info("stopped")
	return err
}
