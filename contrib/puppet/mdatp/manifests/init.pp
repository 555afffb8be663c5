# @summary Installs the mdatp sensor, writes its settings as a managed
#   profile (validated in place before it takes effect), reloads the
#   service only when the profile changed, and checks that the profile is
#   in force and the sensor healthy.
#
# @param package_name The package name in a configured repository.
# @param package_source A package file on the node (.deb or .rpm); when
#   set, it is installed with dpkg (Debian) or rpm (Red Hat) instead.
# @param package_ensure `installed`, `latest`, or a version.
# @param profile_name The profile is /etc/mdatp/managed/<name>.yaml; its
#   keys win over every other layer and are locked.
# @param ebpf_supplementary_event_provider `enabled` or `disabled`; undef
#   leaves the key to the sensor's own layers.
# @param events Event kinds on or off, e.g. `{ 'file_read' => false }`.
# @param exclude Exclusions, e.g. `{ 'paths' => ['/var/cache/backup'] }`.
# @param folding Folding, e.g. `{ 'window_ms' => 2000 }`.
# @param output Outputs (file, syslog, nats), see mdatp.yaml(5).
# @param settings Any other keys of mdatp.yaml(5); its top-level keys
#   replace the parameters above.
# @param wait_seconds After a change: how long to wait for the profile to
#   be in force and the sensor healthy.
class mdatp (
  String[1] $package_name = 'mdatp',
  Optional[String[1]] $package_source = undef,
  String[1] $package_ensure = 'installed',
  Pattern[/\A[A-Za-z0-9._-]+\z/] $profile_name = '50-puppet',
  Optional[Enum['enabled', 'disabled']] $ebpf_supplementary_event_provider = undef,
  Hash $events = {},
  Hash $exclude = {},
  Hash $folding = {},
  Hash $output = {},
  Hash $settings = {},
  Integer[1] $wait_seconds = 60,
) {
  $profile_path = "/etc/mdatp/managed/${profile_name}.yaml"
  $given = {
    'ebpf_supplementary_event_provider' => $ebpf_supplementary_event_provider,
    'events'                            => $events,
    'exclude'                           => $exclude,
    'folding'                           => $folding,
    'output'                            => $output,
  }.filter |$key, $value| { $value =~ NotUndef and !($value =~ Hash and $value.empty) }
  $profile = $given + $settings

  $provider = $package_source ? {
    undef   => undef,
    default => $facts['os']['family'] ? {
      'Debian' => 'dpkg',
      default  => 'rpm',
    },
  }
  package { $package_name:
    ensure   => $package_ensure,
    source   => $package_source,
    provider => $provider,
  }

  file { '/etc/mdatp/managed':
    ensure  => directory,
    owner   => 'root',
    group   => 'root',
    mode    => '0755',
    require => Package[$package_name],
  }

  # Checked in the place it will take, with every other layer, before it
  # replaces the profile in force: a bad value fails this resource with
  # the validator's message (file and key), and nothing depending on it
  # (the reload) happens. Root only: the exclusions are a map of what the
  # sensor does not watch.
  file { $profile_path:
    ensure       => $profile.empty ? { true => absent, default => file },
    content      => "# Managed by Puppet (class mdatp): these keys are locked on this host.\n${mdatp::to_yaml($profile)}",
    owner        => 'root',
    group        => 'root',
    mode         => '0600',
    validate_cmd => "/usr/sbin/mdatpd validate --as ${profile_path} %",
    require      => File['/etc/mdatp/managed'],
    notify       => Service['mdatp'],
  }

  # A refresh is a reload (ExecReload validates, then SIGHUP), never a
  # restart: the sensor keeps watching while its settings change.
  service { 'mdatp':
    ensure  => running,
    enable  => true,
    restart => '/bin/systemctl reload mdatp',
    require => Package[$package_name],
  }

  # The reload is asynchronous: wait until the running sensor applies
  # every key of the profile (a later profile overriding one is named).
  unless $profile.empty {
    exec { 'mdatp profile in force':
      command     => "/usr/bin/mdatp config in-force ${profile_path}",
      refreshonly => true,
      tries       => $wait_seconds,
      try_sleep   => 1,
      logoutput   => on_failure,
      subscribe   => Service['mdatp'],
      before      => Exec['mdatp healthy'],
    }
  }

  # Runs (and reports) only when the sensor is not healthy; fails with
  # the health report when it stays so.
  $healthy = '/usr/bin/mdatp health --field healthy | /bin/grep -qx true'
  exec { 'mdatp healthy':
    command   => "/bin/sh -c '${healthy} || { /usr/bin/mdatp health; exit 1; }'",
    unless    => "/bin/sh -c '${healthy}'",
    tries     => $wait_seconds,
    try_sleep => 1,
    logoutput => on_failure,
    require   => Service['mdatp'],
  }
}
