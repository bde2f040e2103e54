# frozen_string_literal: true
#
# The Vagrant-side half of vagrant/kubelab.rb, loaded by the Vagrantfile only:
# - the `kubelab` config check, run by Vagrant for the provider each machine really uses
#   (`vagrant up`, `vagrant validate`): a box exists for that provider and this host's architecture,
#   Vagrant can pick the box's architecture, the private network is one VirtualBox allows;
# - what runs on the host after the control plane is up: copy its public SSH key back to the course
#   folder (rsync synced folders only go host -> VM) and print the JupyterLab URL with its token.

require "fileutils"
require_relative "kubelab"

module KubelabVagrant
  TOKEN_FILE = "/etc/kubelab/jupyter-token" # written by vagrant/provision-control-plane.sh
  BOX_ARCHITECTURES = Gem::Version.new("2.4.0") # first Vagrant that selects a box's architecture

  class << self
    attr_accessor :course, :arch, :boxes

    def box_architectures?
      Gem::Version.new(Vagrant::VERSION) >= BOX_ARCHITECTURES
    end

    # Problems with the machine's configuration for the provider it is created with.
    def problems(machine)
      provider = machine.provider_name.to_s
      return [] unless Kubelab::PROVIDERS.include?(provider) # a provider this course does not support: Vagrant says so
      found = []
      box, = boxes.choose(provider, arch)
      if box.nil?
        found << boxes.missing_message(provider, arch)
      elsif arch == "arm64" && !box_architectures? && boxes.shipped?(provider, arch)
        # the shipped arm64 boxes are multi-architecture: an older Vagrant would fetch the amd64 build
        found << "Vagrant #{Vagrant::VERSION} cannot pick the arm64 build of box #{box} (box architectures need " \
                 "Vagrant #{BOX_ARCHITECTURES} or newer) (fix: install a current Vagrant from " \
                 "https://developer.hashicorp.com/vagrant/install, or name an arm64-only box in KUBELAB_BOX)"
      end
      if provider == "virtualbox"
        network = vbox_network_problem
        found << network if network
      end
      found
    end

    # VirtualBox (>= 6.1.28, Linux and macOS hosts) creates host-only networks only in 192.168.56.0/21
    # unless /etc/vbox/networks.conf allows more ("* 10.0.0.0/8 ...").
    def vbox_network_problem(conf = "/etc/vbox/networks.conf")
      return nil if Vagrant::Util::Platform.windows?
      subnet = course.subnet
      allowed = [Kubelab::VBOX_HOSTONLY_DEFAULT]
      if File.readable?(conf)
        File.foreach(conf) { |line| allowed.concat(line.split.drop(1)) if line.strip.start_with?("*") }
      end
      ok = allowed.any? do |range|
        net = IPAddr.new(range)
        net.include?(subnet.to_range.first) && net.include?(subnet.to_range.last)
      rescue IPAddr::Error
        false
      end
      return nil if ok
      "network.private_subnet #{course.subnet_s} in course.yaml is outside the host-only ranges VirtualBox " \
        "allows (#{allowed.join(", ")}) (fix: choose a subnet inside #{Kubelab::VBOX_HOSTONLY_DEFAULT} in " \
        "course.yaml, or add the line `* #{course.subnet_s}` to #{conf})"
    end

    # After `vagrant up|provision|reload` of the control plane, on the host.
    def after_control_plane_up(machine)
      share_public_key(machine)
      print_jupyter_url(machine)
    end

    def share_public_key(machine)
      name = "#{machine.name}.pub"
      status, key = guest_output(machine, "cat #{Kubelab::GUEST_REPO}/#{Kubelab::SHARED_DIR}/#{name}")
      return if status != 0 || !key.start_with?("ssh-")
      dir = File.join(Kubelab::ROOT, Kubelab::SHARED_DIR)
      path = File.join(dir, name)
      old = File.exist?(path) ? File.read(path).strip : nil
      return if old == key
      FileUtils.mkdir_p(dir)
      File.write(path, "#{key}\n")
      machine.ui.info("kubelab: copied #{machine.name}'s public SSH key to #{Kubelab::SHARED_DIR}/#{name} " \
                      "for the other nodes")
      return if old.nil?
      # a re-created control plane has a new key: nodes provisioned before still trust the old one
      others = course.nodes.reject(&:control_plane?).map(&:name).join(" ")
      machine.ui.warn("kubelab: #{machine.name} has a new SSH key: run `vagrant reload #{others} --provision` " \
                      "so the other nodes trust it")
    end

    def print_jupyter_url(machine)
      status, token = guest_output(machine, "cat #{TOKEN_FILE}")
      if status != 0 || token.empty?
        machine.ui.warn("kubelab: JupyterLab is not provisioned on #{machine.name} yet: " \
                        "run `vagrant provision #{machine.name}`")
        return
      end
      machine.ui.success("kubelab: JupyterLab is at http://127.0.0.1:#{Kubelab::JUPYTER_PORT}/lab?token=#{token}")
      machine.ui.success("kubelab: start with labs/#{first_notebook}; `kubelab url` prints this link again")
    end

    def first_notebook
      lab = (YAML.safe_load(File.read(course.file))["labs"] || []).first || {}
      "#{lab["id"]}/#{lab["notebook"]}"
    rescue StandardError
      ""
    end

    def guest_output(machine, command)
      out = +""
      status = machine.communicate.execute(command, error_check: false) do |type, data|
        out << data if type == :stdout
      end
      [status, out.strip]
    end
  end

  class Checks < Vagrant.plugin("2", :config)
    def validate(machine)
      { "kubelab" => KubelabVagrant.problems(machine) }
    end
  end

  class Plugin < Vagrant.plugin("2")
    name "kubelab"
    description "kubelab's checks of the course VMs"
    config("kubelab") { Checks }
  end
end
