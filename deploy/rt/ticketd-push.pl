# ticketd push for Request Tracker 5: an initialdata file with one global scrip that tells ticketd a ticket was
# created, so ticketd routes it at once instead of at its next poll. Step by step, with checks: deploy/rt/README.md.
#
# Load it (as a user who can read RT's site config and database, like any rt-setup-database call):
#   TICKETD_HOOK_URL=https://ticketd.internal:8080/api/v1/hooks/rt \
#   TICKETD_PUSH_SECRET="$(cat /etc/ticketd/rt-push-secret)" \
#   rt-setup-database-5 --action insert --skip-create --datafile deploy/rt/ticketd-push.pl
# No restart: the next ticket created already pushes. Loading it again replaces the URL, secret and timeout in
# the scrip it made before (found by its description, "ticketd push") and enables it; it never adds a second one.
#
# The scrip: condition "On Create", action "User Defined", template "Blank", applied to all queues, stage
# TransactionBatch. Its commit code POSTs
#   {"ticket":"<id>","queue":"<queue name>"}
# to TICKETD_HOOK_URL with
#   X-Ticketd-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by TICKETD_PUSH_SECRET>
#   X-Ticketd-Delivery:  <rtname>-<id of the Create transaction>
# No ticket text leaves RT this way: ticketd reads the ticket through REST 2 like a polled one.
#
# Why TransactionBatch: RT::Ticket->Create runs the TransactionCreate-stage scrips inside its database
# transaction, before the commit; ticketd, asked at that moment, would not find the ticket (or not its first
# message). Batch scrips run when RT lets go of the ticket object, after the commit (REST 2: in finish_request,
# just before it answers). Needs $UseTransactionBatch, on by default in RT 5 (Admin -> Global -> Scrips shows the
# stage "Batch (disabled by config)" when it is off).
#
# The scrip runs inside the request that creates the ticket, so creating a ticket waits for ticketd's answer:
# ticketd answers 202 at once, and the scrip gives up after TICKETD_PUSH_TIMEOUT seconds of silence (default 2,
# at most 30). It never fails the create: any error is logged with RT->Logger->warning (the URL and the
# HTTP status, never the secret) and ticketd's slower poll routes the ticket.
#
# Environment, read once when the file is loaded (loading refuses when they are missing or malformed):
#   TICKETD_HOOK_URL      http(s)://host[:port]/api/v1/hooks/<connector name>: ticketd's API as RT reaches it
#   TICKETD_PUSH_SECRET   the connector's `push_secret`; 16 to 256 printable ASCII characters, no spaces
#                         (openssl rand -hex 32)
#   TICKETD_PUSH_TIMEOUT  optional, seconds (default 2)
# Both end up in the scrip's code, in RT's database; RT shows that code to users with the ShowScrips right
# (by default only superusers). Rotating the secret: change ticketd's side and load this file again.

use strict;
use warnings;

our ( @Scrips, @Initial );

my $DESCRIPTION = 'ticketd push';

my $url     = $ENV{TICKETD_HOOK_URL}    // '';
my $secret  = $ENV{TICKETD_PUSH_SECRET} // '';
my $timeout = $ENV{TICKETD_PUSH_TIMEOUT} // '2';
for ( $url, $secret, $timeout ) { s/^\s+|\s+$//g }

die "ticketd-push.pl: TICKETD_HOOK_URL is not set: give ticketd's hook URL, "
  . "e.g. TICKETD_HOOK_URL=https://ticketd.internal:8080/api/v1/hooks/rt; nothing was loaded\n"
  unless length $url;
die "ticketd-push.pl: TICKETD_HOOK_URL must be an http:// or https:// URL without user or password "
  . "(got '$url'); nothing was loaded\n"
  unless $url =~ m{\Ahttps?://[A-Za-z0-9.\-\[\]:]+(?:/[!-~]*)?\z} && $url !~ m{['"\\`\s]};
die "ticketd-push.pl: TICKETD_PUSH_SECRET is not set: give the connector's push_secret "
  . "(e.g. TICKETD_PUSH_SECRET=\"\$(cat /etc/ticketd/rt-push-secret)\"); nothing was loaded\n"
  unless length $secret;
die "ticketd-push.pl: TICKETD_PUSH_SECRET must be 16 to 256 printable ASCII characters without spaces "
  . "(openssl rand -hex 32 makes one); nothing was loaded\n"
  unless $secret =~ /\A[!-~]{16,256}\z/;
die "ticketd-push.pl: TICKETD_PUSH_TIMEOUT must be a number of seconds above 0 and at most 30 "
  . "(got '$timeout'); nothing was loaded\n"
  unless $timeout =~ /\A(?:\d+(?:\.\d*)?|\.\d+)\z/ && $timeout > 0 && $timeout <= 30;

# A single-quoted Perl literal (the checks above leave no quote or backslash in the URL; the secret may have them).
my $literal = sub { my $s = shift; $s =~ s/([\\'])/\\$1/g; return "'$s'" };

my $commit = <<'PERL';
# ticketd push (deploy/rt/ticketd-push.pl; load that file again to change it). Never fails the create.
my $url     = __URL__;
my $secret  = __SECRET__;
my $timeout = __TIMEOUT__;
my $ticket  = $self->TicketObj;
my $id      = $ticket->id;
my $sent = eval {
    require LWP::UserAgent;
    require Digest::SHA;
    require JSON::PP;
    my $json = JSON::PP->new->utf8->allow_nonref;
    my $body = '{"ticket":' . $json->encode("$id") . ',"queue":' . $json->encode( $ticket->QueueObj->Name ) . '}';
    my $ua = LWP::UserAgent->new( timeout => $timeout, max_redirect => 0, agent => 'RT-ticketd-push/1' );
    my $answer = $ua->post(
        $url,
        'Content-Type'        => 'application/json',
        'X-Ticketd-Signature' => 'sha256=' . Digest::SHA::hmac_sha256_hex( $body, $secret ),
        'X-Ticketd-Delivery'  => RT->Config->Get('rtname') . '-' . $self->TransactionObj->id,
        Content               => $body,
    );
    RT->Logger->warning( "ticketd push of ticket #$id to $url: " . $answer->status_line
          . ( $answer->code == 401 ? ' (push_secret differs from TICKETD_PUSH_SECRET?)' : '' )
          . '; ticketd\'s poll will route it' )
      unless $answer->is_success;
    1;
};
unless ($sent) {
    my $error = "$@";
    $error =~ s/\Q$secret\E/[secret]/g;
    RT->Logger->warning("ticketd push of ticket #$id to $url failed: $error; ticketd's poll will route it");
}
return 1;
PERL
$commit =~ s/__URL__/$literal->($url)/e;
$commit =~ s/__SECRET__/$literal->($secret)/e;
$commit =~ s/__TIMEOUT__/0 + $timeout/e;

@Scrips = (
    {
        Description       => $DESCRIPTION,
        Queue             => 0,                  # all queues; ticketd ignores pushes of queues it does not read
        ScripCondition    => 'On Create',
        ScripAction       => 'User Defined',
        Template          => 'Blank',
        Stage             => 'TransactionBatch', # after the commit: see above
        CustomPrepareCode => 'return 1;',
        CustomCommitCode  => $commit,
    },
);

# Loaded before: the earlier scrip gets the new code and is enabled again, and no second one is made.
@Initial = (
    sub {
        my $scrips = RT::Scrips->new( RT->SystemUser );
        $scrips->Limit( FIELD => 'Description', VALUE => $DESCRIPTION );
        $scrips->FindAllRows;    # disabled ones too
        my @found = @{ $scrips->ItemsArrayRef };
        unless (@found) {
            print "Creating scrip '$DESCRIPTION': pushes go to $url (timeout $timeout s)\n";
            return 1;
        }
        for my $scrip (@found) {
            my ( $ok, $msg ) = $scrip->SetCustomCommitCode($commit);
            die "ticketd-push.pl: could not update scrip #" . $scrip->id . ": $msg\n" unless $ok;
            if ( $scrip->Disabled ) {
                ( $ok, $msg ) = $scrip->SetDisabled(0);
                die "ticketd-push.pl: could not enable scrip #" . $scrip->id . ": $msg\n" unless $ok;
            }
            print "Updated scrip #" . $scrip->id . " ($DESCRIPTION): pushes go to $url (timeout $timeout s)\n";
        }
        @Scrips = ();
        return 1;
    },
);

1;
