# frozen_string_literal: true

# The managed profile's text: Ruby's own YAML writer (Psych), so that any
# value a class parameter can hold (strings with quotes or colons, lists,
# nested hashes) is written as valid YAML. Puppet's core language has no
# YAML writer; stdlib's to_yaml would make the module depend on stdlib for
# this one call.
Puppet::Functions.create_function(:'mdatp::to_yaml') do
  dispatch :to_yaml do
    param 'Hash', :data
  end

  def to_yaml(data)
    require 'yaml'
    data.to_yaml
  end
end
