# frozen_string_literal: true
#
# What the Vagrantfile knows, as plain Ruby (no Vagrant API), so it can be run and tested without Vagrant:
# the course's nodes read from course.yaml, the box for a provider and host architecture, and the
# provisioning scripts with the environment each node's provisioning gets. The Vagrantfile and the
# tests both take the provisioning steps from `Kubelab.plan`, so they cannot drift apart.
#
#   ruby vagrant/kubelab.rb plan       # the whole plan as JSON (nodes, boxes, provisioners with env)
#   ruby vagrant/kubelab.rb box PROVIDER [ARCH]
#
# Errors are Kubelab::Error, one line each: "<where>: <problem> (fix: <what to do>)".

require "ipaddr"
require "json"
require "rbconfig"
require "yaml"

module Kubelab
  ROOT = File.expand_path("..", __dir__)
  COURSE_FILE = "course.yaml"
  GUEST_REPO = "/vagrant"           # where every VM sees the course folder (Vagrant's default synced folder)
  SHARED_DIR = "vagrant/.kubelab"   # in the course folder: what one node leaves for the others (gitignored)
  JUPYTER_PORT = 8888               # JupyterLab in the control plane; forwarded to 127.0.0.1:8888 on the host
  PROVIDERS = %w[virtualbox libvirt vmware_desktop parallels].freeze
  ARCHES = %w[amd64 arm64].freeze
  KUBEADM_MIN_CPUS = 2              # kubeadm's preflight refuses a control plane below these
  KUBEADM_MIN_MEMORY_MB = 2048
  VBOX_HOSTONLY_DEFAULT = "192.168.56.0/21" # VirtualBox >= 6.1.28 allows only this without /etc/vbox/networks.conf
  NAME = /\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\z/ # an RFC 1123 label, as in kubelab/course.py
  USER = /\A[a-z_][a-z0-9_-]*\z/
  SCRIPTS = {
    "node" => "vagrant/provision-node.sh",                    # every node
    "control-plane" => "vagrant/provision-control-plane.sh"   # then, on the control plane only
  }.freeze

  class Error < StandardError; end

  def self.error(where, problem, fix)
    Error.new("#{where}: #{problem} (fix: #{fix})")
  end

  Node = Struct.new(:name, :role, :ip, :cpus, :memory_mb, keyword_init: true) do
    def control_plane?
      role == "control-plane"
    end
  end

  # The part of course.yaml the VMs need, checked as strictly as kubelab/course.py checks it
  # (the host may not have kubelab installed, so the Vagrantfile cannot ask Python).
  class Course
    attr_reader :id, :lab_user, :subnet, :nodes, :file

    def self.load(root = ROOT)
      file = File.join(root, COURSE_FILE)
      text = begin
        File.read(file, encoding: "UTF-8")
      rescue SystemCallError => e
        raise Kubelab.error(file, "cannot be read: #{e.message.sub(/ @ .*/, "")}",
                            "run vagrant in the course folder, the one that holds course.yaml")
      end
      data = begin
        YAML.safe_load(text, filename: file)
      rescue Psych::SyntaxError => e
        raise Kubelab.error("#{file}: line #{e.line}, column #{e.column}", "not valid YAML: #{e.problem}",
                            "fix the YAML syntax at that position (indentation, quotes, colons)")
      end
      new(data, file)
    end

    def initialize(data, file)
      @file = file
      raise problem("", "is not a YAML mapping of course, network, lab_user, nodes, labs",
                    "start from the course.yaml in the repository") unless data.is_a?(Hash)
      @id = string(data, "course", "id", NAME)
      @lab_user = string(data, nil, "lab_user", USER)
      @subnet = parse_subnet(data)
      @nodes = parse_nodes(data)
    end

    def control_plane
      nodes.find(&:control_plane?)
    end

    def node(name)
      nodes.find { |n| n.name == name } or
        raise Kubelab.error(file, "no node named #{name}", "use one of: #{nodes.map(&:name).join(", ")}")
    end

    private

    def problem(where, what, fix)
      Kubelab.error(where.empty? ? file : "#{file}: #{where}", what, fix)
    end

    def mapping(data, key)
      value = data[key]
      raise problem(key, "is missing or not a mapping", "add the #{key}: section") unless value.is_a?(Hash)
      value
    end

    def string(data, section, key, pattern)
      src = section ? mapping(data, section) : data
      where = [section, key].compact.join(".")
      value = src[key]
      raise problem(where, "is missing", "add the key") if value.nil?
      unless value.is_a?(String) && value.match?(pattern)
        raise problem(where, "#{value.inspect} is not valid", "use a value matching #{pattern.source}")
      end
      value
    end

    def parse_subnet(data)
      raw = mapping(data, "network")["private_subnet"]
      net = begin
        IPAddr.new(raw.to_s)
      rescue IPAddr::Error
        nil
      end
      unless raw.is_a?(String) && raw.include?("/") && net&.ipv4?
        raise problem("network.private_subnet", "#{raw.inspect} is not an IPv4 network",
                      "write an IPv4 network such as 192.168.56.0/24")
      end
      net
    end

    def parse_nodes(data)
      list = data["nodes"]
      raise problem("nodes", "is missing or empty", "list the nodes, each with name, role, ip, cpus, memory_mb") unless
        list.is_a?(Array) && !list.empty?
      nodes = list.each_with_index.map { |raw, i| node_from(raw, i) }
      %i[name ip].each do |attr|
        dup = nodes.group_by(&attr).find { |_, same| same.size > 1 }
        raise problem("nodes[#{dup[1][1].name}].#{attr}", "two nodes have #{attr} #{dup[0]}",
                      "give every node its own #{attr}") if dup
      end
      cps = nodes.count(&:control_plane?)
      raise problem("nodes", "exactly one node must have role control-plane, found #{cps}",
                    "set role: control-plane on exactly one node") unless cps == 1
      nodes
    end

    def node_from(raw, index)
      raise problem("nodes[#{index}]", "is not a mapping", "write name, role, ip, cpus, memory_mb") unless raw.is_a?(Hash)
      label = raw["name"].is_a?(String) ? raw["name"] : index.to_s
      at = ->(key) { "nodes[#{label}].#{key}" }
      name = raw["name"]
      raise problem(at.call("name"), "#{name.inspect} is not a valid node name",
                    "use a lowercase hostname such as master (letters, digits, '-')") unless
        name.is_a?(String) && name.match?(NAME) && name.size <= 63
      role = raw["role"]
      raise problem(at.call("role"), "#{role.inspect} is not a role", "use control-plane or worker") unless
        %w[control-plane worker].include?(role)
      ip = address(raw["ip"], at.call("ip"))
      cpus = integer(raw["cpus"], at.call("cpus"), 1, 64)
      memory = integer(raw["memory_mb"], at.call("memory_mb"), 512, 262_144)
      node = Node.new(name: name, role: role, ip: ip, cpus: cpus, memory_mb: memory)
      if node.control_plane?
        raise problem(at.call("cpus"), "a control-plane node needs at least #{KUBEADM_MIN_CPUS} CPUs " \
                      "(kubeadm preflight), it has #{cpus}", "set cpus: #{KUBEADM_MIN_CPUS} or more") if
          cpus < KUBEADM_MIN_CPUS
        raise problem(at.call("memory_mb"), "a control-plane node needs at least #{KUBEADM_MIN_MEMORY_MB} MB " \
                      "(kubeadm preflight), it has #{memory}", "set memory_mb: #{KUBEADM_MIN_MEMORY_MB} or more") if
          memory < KUBEADM_MIN_MEMORY_MB
      end
      node
    end

    def address(raw, where)
      ip = begin
        IPAddr.new(raw.to_s)
      rescue IPAddr::Error
        nil
      end
      raise problem(where, "#{raw.inspect} is not an IPv4 address", "write an address such as 192.168.56.10") unless
        raw.is_a?(String) && !raw.include?("/") && ip&.ipv4?
      first = @subnet.to_range.first
      last = @subnet.to_range.last
      unless @subnet.include?(ip) && ip != first && ip != last
        raise problem(where, "#{raw} is not a host address of network.private_subnet #{subnet_s}",
                      "pick an address inside #{subnet_s}")
      end
      if ip == first.succ
        raise problem(where, "#{raw} is the subnet's first address, which the host side of the private network takes",
                      "pick another address inside #{subnet_s}")
      end
      raw
    end

    def integer(raw, where, min, max)
      raise problem(where, "#{raw.inspect} is not a whole number", "write a whole number") unless raw.is_a?(Integer)
      raise problem(where, "#{raw} is below #{min}", "raise the value") if raw < min
      raise problem(where, "#{raw} is above #{max}", "lower the value") if raw > max
      raw
    end

    public

    def subnet_s
      "#{subnet}/#{subnet.prefix}"
    end
  end

  # The host's CPU architecture as box architectures name it: amd64 or arm64.
  # KUBELAB_ARCH overrides it. On macOS the hardware is asked (sysctl hw.optional.arm64), because an
  # x86_64 Vagrant under Rosetta sees x86_64 from both RbConfig and `uname -m` on Apple Silicon.
  def self.host_arch(env = ENV)
    forced = env["KUBELAB_ARCH"].to_s.strip
    unless forced.empty?
      arch = normalize_arch(forced)
      raise error("KUBELAB_ARCH", "#{forced.inspect} is not an architecture", "use amd64 or arm64") unless arch
      return arch
    end
    host_os = RbConfig::CONFIG["host_os"]
    if host_os =~ /darwin/ && `sysctl -in hw.optional.arm64 2>/dev/null`.strip == "1"
      return "arm64"
    end
    if host_os =~ /mswin|mingw|cygwin/
      raw = env["PROCESSOR_ARCHITEW6432"] || env["PROCESSOR_ARCHITECTURE"]
      return normalize_arch(raw.to_s) || "amd64"
    end
    uname = begin
      `uname -m 2>/dev/null`.strip
    rescue SystemCallError
      ""
    end
    normalize_arch(uname) || normalize_arch(RbConfig::CONFIG["host_cpu"].to_s) || "amd64"
  end

  def self.normalize_arch(raw)
    case raw.downcase
    when "x86_64", "amd64", "x64" then "amd64"
    when "arm64", "aarch64", "arm64e" then "arm64"
    end
  end

  # vagrant/boxes.yaml, with vagrant/boxes.local.yaml and KUBELAB_BOX on top.
  class BoxMap
    FILE = File.join("vagrant", "boxes.yaml")
    LOCAL = File.join("vagrant", "boxes.local.yaml")

    def self.load(root = ROOT, env = ENV)
      shipped = read(File.join(root, FILE), required: true)
      local = File.join(root, LOCAL)
      map = shipped.transform_values(&:dup)
      read(local, required: false).each { |provider, arches| map[provider] = (map[provider] || {}).merge(arches) }
      new(map, shipped, env["KUBELAB_BOX"].to_s.strip, File.exist?(local))
    end

    def self.read(path, required:)
      return {} if !required && !File.exist?(path)
      data = begin
        YAML.safe_load(File.read(path), filename: path)
      rescue Psych::SyntaxError => e
        raise Kubelab.error("#{path}: line #{e.line}, column #{e.column}", "not valid YAML: #{e.problem}",
                            "fix the YAML syntax at that position")
      rescue SystemCallError => e
        raise Kubelab.error(path, "cannot be read: #{e.message.sub(/ @ .*/, "")}", "restore it from the repository")
      end
      boxes = data.is_a?(Hash) ? data["boxes"] : nil
      raise Kubelab.error(path, "has no boxes: mapping", "write boxes: {PROVIDER: {amd64: BOX, arm64: BOX}}") unless
        boxes.is_a?(Hash)
      boxes.each do |provider, arches|
        raise Kubelab.error("#{path}: boxes.#{provider}", "unknown provider", "use one of #{PROVIDERS.join(", ")}") unless
          PROVIDERS.include?(provider)
        raise Kubelab.error("#{path}: boxes.#{provider}", "is not a mapping of architectures",
                            "write amd64: BOX and/or arm64: BOX") unless arches.is_a?(Hash)
        arches.each do |arch, box|
          raise Kubelab.error("#{path}: boxes.#{provider}.#{arch}", "unknown architecture", "use amd64 or arm64") unless
            ARCHES.include?(arch)
          raise Kubelab.error("#{path}: boxes.#{provider}.#{arch}", "#{box.inspect} is not a box name",
                              "write a box name such as bento/debian-12, or null") unless box.nil? || box.is_a?(String)
        end
      end
      boxes
    end

    def initialize(map, shipped, forced, local)
      @map = map
      @shipped = shipped
      @forced = forced
      @local = local
    end

    # [box or nil, where the choice came from]
    def choose(provider, arch)
      return [@forced, "KUBELAB_BOX"] unless @forced.empty?
      box = (@map[provider] || {})[arch]
      [box, @local ? "#{FILE} + #{LOCAL}" : FILE]
    end

    # Is the choice the one vagrant/boxes.yaml ships (rather than the user's own)?
    def shipped?(provider, arch)
      box, = choose(provider, arch)
      @forced.empty? && !box.nil? && box == (@shipped[provider] || {})[arch]
    end

    def missing_message(provider, arch)
      having = PROVIDERS.select { |p| (@map[p] || {})[arch] }
      "no Debian 12 box is known for provider #{provider} on #{arch} hosts " \
        "(fix: use #{having.empty? ? "another provider" : "provider #{having.join(" or ")}"} " \
        "(`vagrant up --provider=NAME`), or name a box: KUBELAB_BOX=<box> or #{provider}: {#{arch}: <box>} in #{LOCAL})"
    end
  end

  # KUBELAB_WHEELHOUSE on the host: a folder of wheels inside the course folder, installed offline in the VM.
  def self.guest_wheelhouse(root = ROOT, env = ENV)
    raw = env["KUBELAB_WHEELHOUSE"].to_s.strip
    return nil if raw.empty?
    full = File.expand_path(raw, root)
    rel = full.delete_prefix(File.expand_path(root) + "/")
    if rel == full || rel.start_with?("../")
      raise error("KUBELAB_WHEELHOUSE", "#{raw} is outside the course folder #{root}, which is all the VMs see",
                  "put the wheels in a folder inside it, e.g. vagrant/wheelhouse, and set KUBELAB_WHEELHOUSE=vagrant/wheelhouse")
    end
    "#{GUEST_REPO}/#{rel}"
  end

  # The environment the provisioning scripts get on `node`: every value they use from course.yaml.
  def self.provision_env(course, node, wheelhouse: nil)
    cp = course.control_plane
    env = {
      "KUBELAB_NODE_NAME" => node.name,
      "KUBELAB_NODE_ROLE" => node.role,
      "KUBELAB_NODE_IP" => node.ip,
      "KUBELAB_PRIVATE_SUBNET" => course.subnet_s,
      "KUBELAB_LAB_USER" => course.lab_user,
      "KUBELAB_CONTROL_PLANE_NAME" => cp.name,
      "KUBELAB_NODES" => course.nodes.map { |n| "#{n.name}=#{n.ip}" }.join(" "),
      "KUBELAB_REPO" => GUEST_REPO,
      "KUBELAB_SHARED_DIR" => "#{GUEST_REPO}/#{SHARED_DIR}"
    }
    env["KUBELAB_JUPYTER_PORT"] = JUPYTER_PORT.to_s if node.control_plane?
    env["KUBELAB_WHEELHOUSE"] = wheelhouse if wheelhouse
    env
  end

  # The shell provisioners of `node`, in order: [{name, path (relative to the course folder), env}].
  def self.provisioners(course, node, wheelhouse: nil)
    env = provision_env(course, node, wheelhouse: wheelhouse)
    steps = [{ "name" => "kubelab-node", "path" => SCRIPTS["node"], "env" => env }]
    steps << { "name" => "kubelab-control-plane", "path" => SCRIPTS["control-plane"], "env" => env } if
      node.control_plane?
    steps
  end

  def self.plan(root = ROOT, env = ENV)
    course = Course.load(root)
    arch = host_arch(env)
    boxes = BoxMap.load(root, env)
    wheelhouse = guest_wheelhouse(root, env)
    {
      "course_id" => course.id,
      "arch" => arch,
      "lab_user" => course.lab_user,
      "private_subnet" => course.subnet_s,
      "jupyter_port" => JUPYTER_PORT,
      "nodes" => course.nodes.map do |n|
        {
          "name" => n.name, "role" => n.role, "ip" => n.ip, "cpus" => n.cpus, "memory_mb" => n.memory_mb,
          "boxes" => PROVIDERS.to_h { |p| [p, boxes.choose(p, arch)[0]] },
          "provisioners" => provisioners(course, n, wheelhouse: wheelhouse)
        }
      end
    }
  end

  def self.main(argv)
    case argv[0]
    when "plan"
      puts JSON.pretty_generate(plan)
    when "box"
      provider = argv[1].to_s
      raise error("box", "unknown provider #{provider.inspect}", "use one of #{PROVIDERS.join(", ")}") unless
        PROVIDERS.include?(provider)
      arch = argv[2] ? (normalize_arch(argv[2]) or raise error("box", "unknown architecture #{argv[2]}", "use amd64 or arm64")) : host_arch
      boxes = BoxMap.load
      box, from = boxes.choose(provider, arch)
      raise Error, boxes.missing_message(provider, arch) unless box
      puts "#{box}\t#{provider}\t#{arch}\t#{from}"
    else
      warn "usage: ruby vagrant/kubelab.rb plan | box PROVIDER [ARCH]"
      return 2
    end
    0
  rescue Error => e
    warn "kubelab: #{e.message}"
    1
  end
end

exit Kubelab.main(ARGV) if $PROGRAM_NAME == __FILE__
