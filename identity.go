package mycel

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/join"
)

// startCredentials gives the node its SVID: from the CA it holds (it then
// also issues SVIDs to joining machines), by redeeming a join token, or
// from what an earlier join left in the data dir.
func (n *Node) startCredentials(ctx context.Context, apiHost string) error {
	cfg := n.cfg
	if cfg.CADir != "" {
		a, err := ca.Load(cfg.CADir)
		if err != nil {
			return err
		}
		n.ca = a
		issue := localIssuer(a, n.id.ID.String(), cfg.Name, apiHost, cfg.SVIDTTL)
		if n.creds, err = newCredentials(ctx, a.Bundle(), issue, nil, cfg.DataDir); err != nil {
			return err
		}
		if err := ca.WriteFile(filepath.Join(cfg.DataDir, BundleFile), ca.EncodeCerts(a.Root()), 0o644); err != nil {
			return err
		}
		(&join.Issuer{CA: a, Dir: cfg.CADir, TTL: cfg.SVIDTTL, Log: n.log.With("component", "issuer"),
			SVID: func() [][]byte { return [][]byte{n.creds.current().cert.Raw} }}).Register(n.p2p)
		return ca.RegisterIssuer(cfg.CADir, n.id.ID.String(), n.P2PAddrs())
	}

	cur, bundle, issuers, err := loadJoined(cfg.DataDir)
	switch {
	case err == nil:
		// Restart of a joined node: its kept credentials win over a token,
		// so the same command line can start it again.
		if cfg.Join != "" {
			n.log.Info("already joined; ignoring --join", "trustDomain", bundle.TrustDomain().Name())
		}
	case cfg.Join != "":
		tok, perr := ca.ParseToken(cfg.Join)
		if perr != nil {
			return perr
		}
		jctx, cancel := context.WithTimeout(ctx, time.Minute)
		creds, jerr := join.Join(jctx, n.p2p, tok, subject(cfg.Name, apiHost))
		cancel()
		if jerr != nil {
			return jerr
		}
		cur, bundle, issuers = &svid{key: creds.Key, cert: creds.Chain[0]}, creds.Bundle, tok.Issuers
		if err := ca.WriteFile(filepath.Join(cfg.DataDir, BundleFile), ca.EncodeCerts(bundle.X509Authorities()...), 0o644); err != nil {
			return err
		}
		if err := ca.WriteFile(filepath.Join(cfg.DataDir, IssuersFile), []byte(strings.Join(issuers, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		n.log.Info("joined the trust domain", "trustDomain", bundle.TrustDomain().Name(), "notAfter", cur.cert.NotAfter)
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("this node holds no CA and has not joined: pass --ca-dir, or --join with a token from `mycel token create`")
	default:
		return err
	}
	n.issuers = issuers
	n.creds, err = newCredentials(ctx, bundle, remoteIssuer(n.p2p, bundle, issuers, cfg.Name, apiHost), cur, cfg.DataDir)
	return err
}
