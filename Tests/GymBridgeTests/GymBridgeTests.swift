import Envs
import Foundation
import GymBridge
import TensorCore
import Testing
