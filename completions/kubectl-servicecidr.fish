# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kubectl_servicecidr_global_optspecs
    string join \n kubeconfig= context= cluster= user= request-timeout= v/verbose chunk-size= h/help V/version
end

function __fish_kubectl_servicecidr_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kubectl_servicecidr_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kubectl_servicecidr_using_subcommand
    set -l cmd (__fish_kubectl_servicecidr_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -s h -l help -d 'Print help'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -s V -l version -d 'Print version'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "status" -d 'Every ServiceCIDR with its ranges, state and usage (allocated, free, percent)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "orphans" -d 'IPAddresses whose range is gone, and every other inconsistency between Services, IPAddresses and ServiceCIDRs, with what to do about each'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "doctor" -d 'Check what surrounds the ServiceCIDRs: the apiservers\' flags, the controller, nodes, versions and events, each check with its evidence and remedy (read only)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "explain" -d 'One IP or one ServiceCIDR as the allocator sees it: the ranges holding an IP, its IPAddress, Service and findings; why a range does or does not hand out IPs, and where a new ClusterIP comes from'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "delete" -d 'Retire ServiceCIDRs safely: check, delete, wait out the grace period, release'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "migrate" -d 'Renumber: move every Service out of old ranges into a new one, then retire the old ones'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "serve" -d 'Export Prometheus metrics over HTTP: list once, then follow watches (/metrics, /healthz, /readyz); ends on SIGTERM or Ctrl-C'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l contexts -d 'These contexts (comma-separated), read concurrently' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l concurrency -d 'How many contexts to read at the same time' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
wide\t'The table with finalizers, conditions and blocking counts'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'
prometheus\t'Prometheus metrics (text exposition), e.g. for node-exporter\'s textfile collector'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -s w -l watch -d 'Redraw as ServiceCIDRs and IPAddresses change, until Ctrl-C (tables only)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l no-cross-cluster -d 'With several contexts: leave out the ranges that overlap between clusters'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l all-contexts -d 'Every context of the kubeconfig, read concurrently; one failing does not stop the others'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l kind -d 'Only findings of these kinds (comma-separated)' -r -f -a "Orphaned\t'An IP in use inside no existing ServiceCIDR'
AtRisk\t'Inside terminating ranges only: an orphan once they go'
DanglingParent\t'The IPAddress names a Service that no longer exists'
WrongParent\t'The Service named exists but does not hold that IP'
Unrecorded\t'A Service ClusterIP with no IPAddress object'
Unmanaged\t'An IPAddress the apiserver\'s allocator did not make'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l contexts -d 'These contexts (comma-separated), read concurrently' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l concurrency -d 'How many contexts to read at the same time' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
wide\t'The table with finalizers, conditions and blocking counts'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l include-recent -d 'Also report findings younger than the repair loop\'s 60 s grace'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l suggest-range -d 'Print a ServiceCIDR manifest covering the orphaned and at-risk IPs, ready for kubectl apply'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l all-contexts -d 'Every context of the kubeconfig, read concurrently; one failing does not stop the others'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand orphans" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l contexts -d 'These contexts (comma-separated), read concurrently' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l concurrency -d 'How many contexts to read at the same time' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l all-contexts -d 'Every context of the kubeconfig, read concurrently; one failing does not stop the others'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l wait -d 'Wait until each range is gone, releasing it only when provably safe (as kubectl delete, on by default); with --wait=false the range stays guarded until a later run finishes it' -r -f -a "true\t''
false\t''"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l dry-run -d 'Change nothing on the cluster. A bare --dry-run is --dry-run=client: the same checks and verdict as a real run, with no request that writes' -r -f -a "none\t'Change the cluster'
client\t'Only run the checks, send nothing that changes the cluster'
server\t'Also send each write as a server-side dry run'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l grace-period -d 'How long after the deletionTimestamp an apiserver may still allocate from the range' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l controller-timeout -d 'How long to wait for the service-cidr controller after the grace period before releasing the range ourselves (never while the controller says IPs would be orphaned)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l timeout -d 'Upper bound for the whole command, whatever the server does' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l remove-finalizer -d 'Take over the controller\'s release as soon as the grace period has passed and it is provably safe, instead of waiting --controller-timeout for it'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -s h -l help -d 'Print help'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -f -a "plan" -d 'Print the runbook: the new range, each Service\'s new ClusterIPs, what is skipped and why, and the manual steps; changes nothing'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and not __fish_seen_subcommand_from plan run" -f -a "run" -d 'Carry out the plan: create the new range, recreate each Service in it (original saved first), retire the old ranges, verify. A rerun resumes'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l from -d 'The ServiceCIDRs to empty and retire (comma-separated)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l to -d 'The new range: one CIDR, or one per family (comma-separated)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l name -d 'Name of the new ServiceCIDR [default: from the first CIDR, e.g. range-10-200-0-0-16]' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l only -d 'Move only these Services (NAMESPACE/NAME, comma-separated)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l allow-overlap -d 'Let the new range share addresses with live ranges other than the old ones'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l from -d 'The ServiceCIDRs to empty and retire (comma-separated)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l to -d 'The new range: one CIDR, or one per family (comma-separated)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l name -d 'Name of the new ServiceCIDR [default: from the first CIDR, e.g. range-10-200-0-0-16]' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l only -d 'Move only these Services (NAMESPACE/NAME, comma-separated)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l backup-dir -d 'Where each Service\'s original manifest is saved before it is deleted; a rerun reads it to resume [default: ./servicecidr-migrate-NAME]' -r -f -a "(__fish_complete_directories)"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l dry-run -d 'Change nothing on the cluster. A bare --dry-run is --dry-run=client: the plan and its checks, with no request that writes' -r -f -a "none\t'Change the cluster'
client\t'Only run the checks, send nothing that changes the cluster'
server\t'Also send each write as a server-side dry run'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l timeout -d 'Upper bound for retiring the old ranges once the Services have moved' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l color -d 'When to colour the table' -r -f -a "auto\t'Colour when stdout is a terminal and NO_COLOR is unset'
always\t'Always colour tables'
never\t'Never colour'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -s o -l output -d 'Output format' -r -f -a "table\t'A table for people'
json\t'A JSON document with stable field names'
yaml\t'The same document as YAML'"
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l allow-overlap -d 'Let the new range share addresses with live ranges other than the old ones'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -s y -l yes -d 'Go ahead without asking (needed when stdin is not a terminal)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -l no-headers -d 'Leave out table headers'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand migrate; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l listen -d 'Address to serve on (HOST:PORT; port 0 picks a free one)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand serve" -s h -l help -d 'Print help'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -l context -d 'The kubeconfig context to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -l user -d 'The kubeconfig user to use' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -l request-timeout -d 'How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -l chunk-size -d 'Objects per list request (page size); pages are read as they arrive, so memory does not grow with it' -r
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -s v -l verbose -d 'Log requests to stderr (-v: requests, -vv: more); credentials are never logged'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand completion" -s h -l help -d 'Print help'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "status" -d 'Every ServiceCIDR with its ranges, state and usage (allocated, free, percent)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "orphans" -d 'IPAddresses whose range is gone, and every other inconsistency between Services, IPAddresses and ServiceCIDRs, with what to do about each'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "doctor" -d 'Check what surrounds the ServiceCIDRs: the apiservers\' flags, the controller, nodes, versions and events, each check with its evidence and remedy (read only)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "explain" -d 'One IP or one ServiceCIDR as the allocator sees it: the ranges holding an IP, its IPAddress, Service and findings; why a range does or does not hand out IPs, and where a new ClusterIP comes from'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "delete" -d 'Retire ServiceCIDRs safely: check, delete, wait out the grace period, release'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "migrate" -d 'Renumber: move every Service out of old ranges into a new one, then retire the old ones'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "serve" -d 'Export Prometheus metrics over HTTP: list once, then follow watches (/metrics, /healthz, /readyz); ends on SIGTERM or Ctrl-C'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "completion" -d 'Print a shell completion script'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and not __fish_seen_subcommand_from status orphans doctor explain delete migrate serve completion help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "plan" -d 'Print the runbook: the new range, each Service\'s new ClusterIPs, what is skipped and why, and the manual steps; changes nothing'
complete -c kubectl-servicecidr -n "__fish_kubectl_servicecidr_using_subcommand help; and __fish_seen_subcommand_from migrate" -f -a "run" -d 'Carry out the plan: create the new range, recreate each Service in it (original saved first), retire the old ranges, verify. A rerun resumes'
