import Foundation
import PackagePlugin

/// Embeds a target's `Resources/*.yaml` texts in its code at build time: `Resources/openapi.yaml`
/// becomes `OpenAPIDocument.yaml`, a static string (the type is named after the file, in `TextName`
/// style below). The text stays a YAML file in the repository; the binary needs nothing beside it.
@main
struct EmbedText: BuildToolPlugin {
    /// File name → (type, property) of the generated string.
    static let embedded = ["openapi.yaml": ("OpenAPIDocument", "yaml")]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let tool = try context.tool(named: "embed-text")
        return Self.embedded.sorted(by: { $0.key < $1.key }).map { file, name in
            let input = target.directoryURL.appending(path: "Resources").appending(path: file)
            let output = context.pluginWorkDirectoryURL.appending(path: "\(name.0)+\(name.1).swift")
            return .buildCommand(
                displayName: "Embedding \(file) as \(name.0).\(name.1)", executable: tool.url,
                arguments: [input.path(), output.path(), name.0, name.1], inputFiles: [input], outputFiles: [output])
        }
    }
}
