#!/usr/bin/perl
# A minimal syslog collector for the VM test: accepts TCP connections on
# 127.0.0.1:PORT, one at a time, and appends each octet-counted record
# (RFC 6587) to FILE, one per line. Perl because the guest image is
# minbase (perl-base, no Python) and has no rsyslog; the host tests run
# the real rsyslogd.
use strict;
use warnings;
use IO::Socket::INET;

my ($port, $path) = @ARGV;
my $server = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 5, ReuseAddr => 1,
) or die "listen on $port: $!";
while (my $conn = $server->accept) {
    my $buf = '';
    while (sysread($conn, my $data, 65536)) {
        $buf .= $data;
        while ($buf =~ /^(\d+) /) {
            my ($len, $skip) = ($1, length($1) + 1);
            last if length($buf) < $skip + $len;
            my $rec = substr($buf, $skip, $len);
            $buf = substr($buf, $skip + $len);
            open(my $out, '>>', $path) or die "$path: $!";
            print $out "$rec\n";
            close($out);
        }
    }
}
